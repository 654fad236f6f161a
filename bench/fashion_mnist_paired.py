"""Paired real images for the missing-modality study: two views of the same Fashion-MNIST item
(Debian's dataset-fashion-mnist), its top half and its bottom half, one task (the item's class,
10 classes). A data-preparation helper, not part of the product.

usage: fashion_mnist_paired.py OUT [PER_CLASS_TRAIN] [PER_CLASS_TEST] [MODALITY_DROPOUT]
Writes OUT/{top,bottom}/{train,test}/<n>.png, OUT/cases.csv, OUT/cases_test.csv, OUT/run.toml.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fashion_mnist_folders import NAMES, SRC, read_idx, write_png  # noqa: E402


def main():
    out = sys.argv[1]
    per = {"train": int(sys.argv[2]) if len(sys.argv) > 2 else 60, "test": int(sys.argv[3]) if len(sys.argv) > 3 else 20}
    q = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    for part, prefix in (("train", "train"), ("test", "t10k")):
        imgs, h, w = read_idx(f"{SRC}/{prefix}-images-idx3-ubyte.gz")
        labels, _, _ = read_idx(f"{SRC}/{prefix}-labels-idx1-ubyte.gz")
        count, rows = {}, ["top,bottom,item"]
        for n, (img, y) in enumerate(zip(imgs, labels)):
            if count.get(y, 0) >= per[part]:
                continue
            count[y] = count.get(y, 0) + 1
            half = h // 2
            for view, rows_range in (("top", range(0, half)), ("bottom", range(half, h))):
                d = os.path.join(out, view, part)
                os.makedirs(d, exist_ok=True)
                pixels = b"".join(img[r * w:(r + 1) * w] for r in rows_range)
                write_png(os.path.join(d, f"{n:05d}.png"), pixels, w, len(rows_range))
            rows.append(f"top/{part}/{n:05d}.png,bottom/{part}/{n:05d}.png,{NAMES[y]}")
        with open(os.path.join(out, "cases.csv" if part == "train" else "cases_test.csv"), "w") as f:
            f.write("\n".join(rows) + "\n")
    with open(os.path.join(out, "run.toml"), "w") as f:
        f.write('seed = 0\n[model]\nwidths = [16, 16, 32, 32, 64, 64, 128, 128]\ndropout = 0.1\nbn_momentum = 0.1\n'
                '[data]\nimage_size = 32\nworkers = 2\n'
                '[data.paired]\nmanifest = "cases.csv"\nimages = ["top", "bottom"]\nlabels = ["item"]\n'
                'test_manifest = "cases_test.csv"\n'
                f'[train]\nepochs = 15\nbatch_size = 32\nlr = 1e-3\nplateau_patience = 4\nearly_stop_patience = 15\n'
                f'modality_dropout = {q}\n')


if __name__ == "__main__":
    main()
