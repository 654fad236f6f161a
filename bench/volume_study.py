#!/usr/bin/python3
"""2D against 2.5D on real volumes, and what reading volumes costs beside training.

  /usr/bin/python3 bench/volume_study.py build/drifa OUT [--threads 2] [--per-class 24] [--epochs 20]

Data: two volume modalities cut from Debian's mricron-data brain templates, a human T1 (ch2bet,
the Colin brain) and a macaque T1 (inia19-t1-brain); per modality, NIfTI crops (SIDE x SIDE x 8, default 64) from the upper ("superior") or lower ("inferior") third of the brain, with intensity
jitter and noise, each written in one of six orientations (tests/python/volume_oracle.py
make-dataset). Every slice of a volume is one group: no volume spans training, validation and
test. The two runs differ only in stack = 1 (one slice, grey) or stack = 3 (the slice and its
neighbours as channels). Caveat: the crops of one modality come from one brain, so volumes of
the same class overlap in anatomy; the task measures the pipeline and the 2.5D effect, not a
clinical claim.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ORACLE = os.path.join(HERE, "..", "tests", "python", "volume_oracle.py")
TEMPLATES = "/usr/share/mricron/templates/"


def run(cmd):
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout, time.time() - t0


MODALITIES = ("human", "macaque")


def config(out, data, stack, epochs, seed):
    modalities = "".join(f"""[[data.modality]]
name = "{name}"
train = "{data}/{name}"
kind = "volume"
intensity = "percentile"
stack = {stack}
""" for name in MODALITIES)
    return f"""seed = {seed}
[model]
widths = [16, 16, 32, 32, 64, 64, 128, 128]  # the demo widths
bn_momentum = 0.1
[data]
image_size = 32
channels = 3
workers = 2
{modalities}[augment]
rotation = 10
translate = 2
[train]
epochs = {epochs}
batch_size = 16
early_stop_patience = 10
"""


def fmt(task, key):
    v = task[key]
    iv = task.get("intervals", {}).get(key)
    return "%.3f [%.3f, %.3f]" % (v, iv[0], iv[1]) if iv else "%.3f" % v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("drifa")
    ap.add_argument("out")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--per-class", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--side", type=int, default=64, help="crop side in voxels (8 slices deep)")
    a = ap.parse_args()
    data = os.path.join(a.out, "data")
    for name, template, seed in (("human", "ch2bet.nii.gz", 1), ("macaque", "inia19-t1-brain.nii.gz", 2)):
        if not os.path.isdir(os.path.join(data, name)):
            run(["/usr/bin/python3", ORACLE, "make-dataset", TEMPLATES + template, os.path.join(data, name), str(a.per_class), str(seed), str(a.side), "8"])
    # One volume per class and modality never seen by training: predict answers for it at the end.
    held = os.path.join(a.out, "held_out")
    if not os.path.isdir(held):
        os.makedirs(held)
        for name in MODALITIES:
            for cls in ("superior", "inferior"):
                first = sorted(os.listdir(os.path.join(data, name, cls)))[0]
                os.rename(os.path.join(data, name, cls, first), os.path.join(held, "%s_%s_%s" % (name, cls, first)))
    volumes = sorted(os.path.join(r, f) for r, _, fs in os.walk(data) for f in fs if f.endswith(".nii.gz"))
    # Read cost: every volume of the study, then two full-size templates.
    out, secs = run([a.drifa, "volume", "--threads", str(a.threads), "-o", os.path.join(a.out, "read.json")] + volumes)
    read = json.load(open(os.path.join(a.out, "read.json")))
    slices = sum(v["size"][2] for v in read["volumes"])
    full, _ = run([a.drifa, "volume", "--threads", str(a.threads), "-o", os.path.join(a.out, "read_full.json"),
                   TEMPLATES + "ch2.nii.gz", TEMPLATES + "ch2better.nii.gz"])
    full_read = json.load(open(os.path.join(a.out, "read_full.json")))
    flags = next((l.split(":")[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
    print("machine: %d cores, ISA %s" % (os.cpu_count(), " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags)))
    print("read: %d study volumes (%d axial slices) in %.3f s: %.1f volumes/s, %.0f slices/s"
          % (len(volumes), slices, read["seconds"], len(volumes) / read["seconds"], slices / read["seconds"]))
    for v in full_read["volumes"]:
        print("read: %s %s in %.3f s (%.0f axial slices/s)" % (os.path.basename(v["path"]), "x".join(map(str, v["size"])), v["seconds"],
                                                           v["size"][2] / v["seconds"]))
    rows = []
    for stack in (1, 3):
        run_dir = os.path.join(a.out, "stack%d" % stack)
        cfg = os.path.join(a.out, "stack%d.toml" % stack)
        with open(cfg, "w") as f:
            f.write(config(a.out, data, stack, a.epochs, a.seed))
        if not os.path.exists(os.path.join(run_dir, "metrics.json")):
            run([a.drifa, "train", "-q", "--threads", str(a.threads), "-c", cfg, "-o", run_dir])
        log = json.load(open(os.path.join(run_dir, "log.json")))
        rate = sum(r["train_samples"] for r in log) / sum(r["seconds"] for r in log)
        m = json.load(open(os.path.join(run_dir, "metrics.json")))
        for task, t in m["tasks"].items():
            g = t.get("group_level", {})
            rows.append((stack, task, t.get("samples", ""), fmt(t, "accuracy"), g.get("groups", ""), fmt(g, "accuracy") if g else "", "%.0f" % rate))
        for f in sorted(os.listdir(held)):
            name, cls = f.split("_")[:2]
            out_json = os.path.join(a.out, "predict_stack%d_%s.json" % (stack, f.replace(".nii.gz", "")))
            run([a.drifa, "predict", run_dir, "--threads", str(a.threads), "-T", "0", "-i", "%s=%s" % (name, os.path.join(held, f)), "-o", out_json])
            v = json.load(open(out_json))["volumes"][0]
            t = v["tasks"][name]
            print("predict (stack %d) held-out %s: true %s, predicted %s (p = %.3f over %d slices; per-slice P(%s): %s)"
                  % (stack, f, cls, t["class"], t["probability"], len(v["slices"]), cls,
                     " ".join("%.2f" % p for p in v["curve"][name][cls])))
    print("\n| stack | task | test slices | slice accuracy [95%, cluster bootstrap] | test volumes | volume accuracy (mean of slices) [95%] | training samples/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s |" % " | ".join(str(x) for x in r))


if __name__ == "__main__":
    main()
