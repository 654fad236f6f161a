#!/usr/bin/env python3
"""Test-time augmentation beside Monte Carlo dropout, before and after temperature scaling, on the
demo data and on Fashion-MNIST (Debian's dataset-fashion-mnist, real photographs of clothes):

    bench/tta_study.py DRIFA_BINARY WORK [--threads N] [--fashion-per-class N] [--passes T]

Per data set: train one model, `drifa calibrate --tta V` on the validation part, `drifa uq --tta V`
on the test part; prints accuracy [95% interval], NLL and ECE raw > calibrated for deterministic,
mc and tta. The demo's shapes look the same turned or mirrored, so its modalities allow all eight
symmetries (dihedral); clothes are only mirrored left-right (hflip, two views)."""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def sh(cmd, log):
    print("$ " + " ".join(cmd), flush=True)
    with open(log, "a") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}; see {log}")


def table(uq_path, name, views):
    uq = json.load(open(uq_path))
    print(f"\n{name}: {uq['models']} model, {uq['passes']} MC passes, {views} TTA views, test part")
    print(f"{'task':8} {'method':14} {'accuracy [95%]':24} {'NLL raw>cal':18} {'ECE raw>cal':18} {'T':>6}")
    for task, methods in uq["tasks"].items():
        for m in ("deterministic", "mc", "tta"):
            if m not in methods:
                continue
            s = methods[m]
            acc = s["metrics"]["accuracy"]
            ci = s.get("intervals", {}).get("accuracy")
            accs = f"{acc:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
            b = s.get("before_calibration", {})
            nll = f"{b.get('nll', s['nll']):.3f}>{s['nll']:.3f}" if b else f"{s['nll']:.3f}"
            ece = f"{b.get('ece', s['ece']):.3f}>{s['ece']:.3f}" if b else f"{s['ece']:.3f}"
            t = s.get("temperature")
            print(f"{task:8} {m:14} {accs:24} {nll:18} {ece:18} {t if t is None else round(t, 2):>6}")


def study(drifa, run_toml, run_dir, log, threads, passes, views):
    sh([drifa, "--threads", str(threads), "-q", "train", "-c", run_toml, "-o", run_dir], log)
    sh([drifa, "--threads", str(threads), "-q", "calibrate", run_dir, "-T", str(passes), "--tta", str(views), "--seed", "1"], log)
    sh([drifa, "--threads", str(threads), "-q", "uq", run_dir, "-T", str(passes), "--tta", str(views), "--seed", "2",
        "--resamples", "1000"], log)
    return os.path.join(run_dir, "uq", "uq.json")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("drifa")
    ap.add_argument("work")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--passes", type=int, default=20)
    ap.add_argument("--fashion-per-class", type=int, default=300)
    args = ap.parse_args()
    drifa = os.path.abspath(args.drifa)
    os.makedirs(args.work, exist_ok=True)
    log = os.path.join(args.work, "log.txt")
    results = []

    demo = os.path.join(args.work, "demo")
    sh([drifa, "-q", "synth", "-o", demo], log)
    with open(os.path.join(demo, "demo.toml"), "a") as f:
        f.write('\n[tta]\nderm = "dihedral"\nmri = "dihedral"\n')
    results.append((study(drifa, os.path.join(demo, "demo.toml"), os.path.join(args.work, "demo-run"), log, args.threads,
                          args.passes, 8), "demo (synthetic, dihedral)", 8))

    fashion = os.path.join(args.work, "fashion")
    sh([sys.executable, os.path.join(HERE, "fashion_mnist_folders.py"), fashion, str(args.fashion_per_class), "100"], log)
    with open(os.path.join(fashion, "run.toml"), "a") as f:
        f.write('\n[tta]\ntops = "hflip"\nother = "hflip"\n')
    results.append((study(drifa, os.path.join(fashion, "run.toml"), os.path.join(args.work, "fashion-run"), log, args.threads,
                          args.passes, 2), "Fashion-MNIST (hflip)", 2))
    with open("/proc/cpuinfo") as f:
        flags = next((l for l in f if l.startswith("flags")), "")
    isa = ", ".join(x for x in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f" {x}" in flags)
    print(f"\nmachine: {os.cpu_count()} cores ({isa}); {args.threads} threads")
    for r in results:
        table(*r)


if __name__ == "__main__":
    main()
