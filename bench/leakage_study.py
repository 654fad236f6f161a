#!/usr/bin/env python3
"""Split by image vs split by group, on real images with repeated units.

The images: Debian's dataset-fashion-mnist (real 28x28 photographs of clothing, 10 classes). Each
item is one group (the stand-in for a patient or lesion) and is seen in several views: distinct
22x22 crops of it, the way slices of one scan or photographs of one lesion are near copies of each
other. Two modalities per case (paired): the crop, and the same crop with inverted contrast. One
view of every fifth item is stored twice (a second PNG with other filter bytes), as copies end up
in real data sets.

Runs, with the drifa binary given:
  drifa check          on both configurations (the duplicate and group report)
  drifa train          split by image (no group column; refused as a leak, then --allow-duplicates)
  drifa train          split by group (group_column = "item")
and prints the test accuracy of both, the image- and group-level metrics of the grouped run with
their cluster-bootstrap intervals, and the leak report.

  bench/leakage_study.py build/drifa WORKDIR [--items-per-class 30] [--views 6] [--epochs 20] [--threads N]
"""
import argparse
import json
import os
import subprocess
import sys

import struct
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fashion_mnist_folders import NAMES, SRC, read_idx  # noqa: E402

CROP = 22


def write_png(path, pixels, sub_filter=False):
    """8-bit grayscale PNG. sub_filter: the same pixels encoded with PNG's Sub filter, other bytes."""
    h, w = pixels.shape
    raw = bytearray()
    for row in pixels.astype(np.uint8):
        if sub_filter:
            raw.append(1)
            raw += bytes((int(row[i]) - (int(row[i - 1]) if i else 0)) & 0xFF for i in range(w))
        else:
            raw.append(0)
            raw += row.tobytes()

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(bytes(raw), 1 if sub_filter else 9)) + chunk(b"IEND", b""))


def view(item, dx, dy, invert):
    crop = item[dy:dy + CROP, dx:dx + CROP].astype(np.float64) / 255.0
    if invert:
        crop = 1.0 - crop
    return (crop * 255).round().astype(np.uint8)


def build(root, items_per_class, views, seed):
    imgs, h, w = read_idx(f"{SRC}/train-images-idx3-ubyte.gz")
    labels, _, _ = read_idx(f"{SRC}/train-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(seed)
    offsets = [(dx, dy) for dx in range(w - CROP + 1) for dy in range(h - CROP + 1)]
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    rows, count = [], {}
    for n, y in enumerate(labels):
        if count.get(y, 0) >= items_per_class:
            continue
        count[y] = count.get(y, 0) + 1
        item = np.frombuffer(imgs[n], dtype=np.uint8).reshape(h, w)
        picks = rng.choice(len(offsets), size=views, replace=False)  # distinct crops: no accidental copies
        for v, o in enumerate(picks):
            dx, dy = offsets[o]
            a, b = f"images/i{n}_v{v}_a.png", f"images/i{n}_v{v}_b.png"
            write_png(os.path.join(root, a), view(item, dx, dy, False))
            write_png(os.path.join(root, b), view(item, dx, dy, True))
            rows.append((a, b, NAMES[y], f"item{n}"))
        if count[y] % 5 == 0:  # a re-encoded copy of view 0: the same pixels, other bytes
            dx, dy = offsets[picks[0]]
            a, b = f"images/i{n}_copy_a.png", f"images/i{n}_copy_b.png"
            write_png(os.path.join(root, a), view(item, dx, dy, False), sub_filter=True)
            write_png(os.path.join(root, b), view(item, dx, dy, True), sub_filter=True)
            rows.append((a, b, NAMES[y], f"item{n}"))
        if len(count) == 10 and all(c >= items_per_class for c in count.values()):
            break
    with open(os.path.join(root, "cases.csv"), "w") as f:
        f.write("crop,inverted,item_class,item\n")
        for r in rows:
            f.write(",".join(r) + "\n")
    return len(rows), 10 * items_per_class


CONFIG = """seed = {seed}

[model]
widths = [16, 16, 32, 32, 64, 64, 128, 128]
dropout = 0.1
bn_momentum = 0.1   # the demo's: running statistics that keep up with a short run (the spec's Keras 0.01 lags)
attention = "drifa"

[data]
image_size = 32
channels = 1
val_fraction = 0.2
test_fraction = 0.25
workers = 2

[data.paired]
manifest = "cases.csv"
images = ["crop", "inverted"]
labels = ["item_class"]
{group}

[train]
epochs = {epochs}
batch_size = 32
lr = 2e-3
plateau_patience = 3
early_stop_patience = 6
"""


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, text=True, capture_output=True, **kw)


def interval(t, key):
    v = t.get(key)
    iv = t.get("intervals", {}).get(key)
    if v is None:
        return "n/a"
    return f"{v:.3f} [{iv[0]:.3f}, {iv[1]:.3f}]" if iv else f"{v:.3f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("drifa")
    ap.add_argument("work")
    ap.add_argument("--items-per-class", type=int, default=30)
    ap.add_argument("--views", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    drifa = os.path.abspath(a.drifa)
    work = os.path.abspath(a.work)
    os.makedirs(work, exist_ok=True)
    n_rows, n_items = build(work, a.items_per_class, a.views, a.seed)
    print(f"data: {n_rows} cases (a crop and its negative) of {n_items} Fashion-MNIST items, 10 classes")
    configs = {}
    for name, group in (("by_image", ""), ("by_group", 'group_column = "item"')):
        path = os.path.join(work, f"{name}.toml")
        with open(path, "w") as f:
            f.write(CONFIG.format(seed=a.seed, group=group, epochs=a.epochs))
        configs[name] = path
    threads = ["--threads", str(a.threads)] if a.threads else []
    for name, cfg in configs.items():
        c = run([drifa, "check", "-c", cfg] + threads)
        print(f"--- drifa check ({name}): exit {c.returncode}")
        print(c.stdout + c.stderr)
    results = {}
    for name, cfg in configs.items():
        out = os.path.join(work, "run_" + name)
        cmd = [drifa, "train", "-c", cfg, "-o", out, "--quiet"] + threads
        if name == "by_image":
            refused = run(cmd)
            print(f"--- train ({name}) without --allow-duplicates: exit {refused.returncode}\n{refused.stderr.strip()[:600]}")
            cmd.append("--allow-duplicates")
            if os.path.exists(out):
                subprocess.run(["rm", "-rf", out])
        r = run(cmd)
        if r.returncode != 0:
            print(r.stdout + r.stderr)
            sys.exit(f"train ({name}) failed")
        results[name] = json.load(open(os.path.join(out, "metrics.json")))
    print("\n=== test metrics (item_class task) ===")
    print(f"{'split':<10} {'unit':<14} {'count':>6}  {'accuracy':<24} {'balanced accuracy':<24} {'macro F1':<24}")
    for name, m in results.items():
        t = m["tasks"]["item_class"]
        scheme = "cluster" if "groups" in t.get("intervals", {}) else "image"
        print(f"{name:<10} {'images (' + scheme + ')':<14} {t['samples']:>6}  {interval(t, 'accuracy'):<24} "
              f"{interval(t, 'balanced_accuracy'):<24} {interval(t, 'macro_f1'):<24}")
        if "group_level" in t:
            g = t["group_level"]
            print(f"{name:<10} {'items (' + g['aggregate'] + ')':<14} {g['groups']:>6}  {interval(g, 'accuracy'):<24} "
                  f"{interval(g, 'balanced_accuracy'):<24} {interval(g, 'macro_f1'):<24}")


if __name__ == "__main__":
    main()
