"""Turns Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist) into two image-folder
modalities for a real-data DRIFA run (a data-preparation helper; not part of the product):

  tops:     T-shirt/top, Pullover, Coat, Shirt         (4 classes, hard to tell apart)
  other:    Trouser, Dress, Sandal, Sneaker, Bag, Ankle boot (6 classes)

usage: fashion_mnist_folders.py OUT [PER_CLASS_TRAIN] [PER_CLASS_TEST]
Writes OUT/<modality>/{train,test}/<class>/<n>.png and OUT/run.toml.
"""
import gzip
import os
import struct
import sys
import zlib

SRC = "/usr/share/datasets/fashion-mnist"
NAMES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]
MODALITIES = {"tops": [0, 2, 4, 6], "other": [1, 3, 5, 7, 8, 9]}


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return [data[16 + i * rows * cols:16 + (i + 1) * rows * cols] for i in range(n)], rows, cols
    return list(data[8:8 + n]), 0, 0


def write_png(path, pixels, w, h):
    raw = b"".join(b"\x00" + pixels[y * w:(y + 1) * w] for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def main():
    out = sys.argv[1]
    per = {"train": int(sys.argv[2]) if len(sys.argv) > 2 else 300, "test": int(sys.argv[3]) if len(sys.argv) > 3 else 100}
    for part, prefix in (("train", "train"), ("test", "t10k")):
        imgs, h, w = read_idx(f"{SRC}/{prefix}-images-idx3-ubyte.gz")
        labels, _, _ = read_idx(f"{SRC}/{prefix}-labels-idx1-ubyte.gz")
        count = {}
        for img, y in zip(imgs, labels):
            if count.get(y, 0) >= per[part]:
                continue
            for mod, classes in MODALITIES.items():
                if y in classes:
                    d = os.path.join(out, mod, part, NAMES[y])
                    os.makedirs(d, exist_ok=True)
                    write_png(os.path.join(d, f"{count.get(y, 0):05d}.png"), img, w, h)
            count[y] = count.get(y, 0) + 1
    with open(os.path.join(out, "run.toml"), "w") as f:
        f.write('seed = 0\n[model]\nwidths = [16, 16, 32, 32, 64, 64, 128, 128]\ndropout = 0.1\nbn_momentum = 0.1\n'
                '[data]\nimage_size = 32\nworkers = 2\n'
                '[[data.modality]]\nname = "tops"\ntrain = "tops/train"\ntest = "tops/test"\n'
                '[[data.modality]]\nname = "other"\ntrain = "other/train"\ntest = "other/test"\n'
                '[train]\nepochs = 10\nbatch_size = 32\nplateau_patience = 3\nearly_stop_patience = 5\n'
                '[augment]\ntranslate = 2\n')


if __name__ == "__main__":
    main()
