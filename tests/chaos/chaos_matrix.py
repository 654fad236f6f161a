#!/usr/bin/env python3
"""The chaos matrix: interrupted and starved writers leave nothing lost.

For each writing command (train, ensemble, cv, calibrate, uq, report) on a tiny run:
  kill -9   at random points of its run (seeded), then the same command again; it must finish
            and its outputs must equal an uninterrupted run's, bit for bit (JSON compared without
            its wall-time fields; a checkpoint's tensors without the optimizer's serialized bytes).
  disk full the folder it writes on a small tmpfs (root only): it must fail with a clear error
            and a non-zero exit, leave no temporary file, every file it had written must still
            read; after the tmpfs grows, the same command completes and equals the uninterrupted
            run.

usage: chaos_matrix.py DRIFA WORKDIR [--kills N] [--seed S] [--only CMD,..] [--no-disk-full]
Prints one row per cell and exits 1 when any cell fails.
"""
import argparse
import csv
import fnmatch
import io
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time

TIME_KEYS = ("seconds", "time", "elapsed", "rate", "date", "eta")  # wall-clock fields, not results


def sh(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def strip_times(v):
    if isinstance(v, dict):
        return {k: strip_times(x) for k, x in v.items() if not any(t in k.lower() for t in TIME_KEYS)}
    if isinstance(v, list):
        return [strip_times(x) for x in v]
    return v


def safetensors_tensors(path):
    """name -> raw bytes, without the metadata (a checkpoint's optimizer tensor is left out)."""
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    data = b[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or name == "optimizer":
            continue
        s, e = t["data_offsets"]
        out[name] = (t["dtype"], tuple(t["shape"]), data[s:e])
    return out


def same_file(ref_root, got_root, rel):
    """None when equal, else why not. Paths inside a file name its own folder: each side's root
    is read as ROOT before comparing."""
    a, b = os.path.join(ref_root, rel), os.path.join(got_root, rel)
    if not os.path.exists(b):
        return "missing " + rel
    if rel.endswith("checkpoint.safetensors"):
        return None if safetensors_tensors(a) == safetensors_tensors(b) else "differs: " + rel
    with open(a, "rb") as fa, open(b, "rb") as fb:
        ba, bb = fa.read(), fb.read()
    if rel.endswith(".json"):
        ja = strip_times(json.loads(ba.decode().replace(ref_root, "ROOT")))
        jb = strip_times(json.loads(bb.decode().replace(got_root, "ROOT")))
        return None if ja == jb else "differs: " + rel + first_json_difference(ja, jb)
    if rel.endswith(".html") or rel.endswith(".csv"):
        ba, bb = ba.replace(ref_root.encode(), b"ROOT"), bb.replace(got_root.encode(), b"ROOT")
    if rel.endswith(".csv"):
        ta, tb = csv_without_times(ba), csv_without_times(bb)
        if ta != tb:
            row = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb)))
            return "differs: %s row %d" % (rel, row)
        return None
    return None if ba == bb else "differs: " + rel


def csv_without_times(raw):
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8", "replace"))))
    if not rows:
        return rows
    keep = [i for i, h in enumerate(rows[0]) if not any(t in h.lower() for t in TIME_KEYS)]
    return [[r[i] for i in keep if i < len(r)] for r in rows]


def first_json_difference(a, b, where=""):
    if type(a) is not type(b):
        return " at %s: %r vs %r" % (where or "/", a, b)
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return " at %s/%s: only on one side" % (where, k)
            d = first_json_difference(a[k], b[k], where + "/" + str(k))
            if d:
                return d
        return ""
    if isinstance(a, list):
        if len(a) != len(b):
            return " at %s: %d vs %d items" % (where, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_json_difference(x, y, "%s[%d]" % (where, i))
            if d:
                return d
        return ""
    return "" if a == b else " at %s: %r vs %r" % (where, a, b)


def outputs(root, patterns):
    found = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), root)
            if f == ".drifa.lock":  # the writer's pid and start time, not an output
                continue
            if any(fnmatch.fnmatch(rel, p) for p in patterns):
                found.append(rel)
    return sorted(found)


def leftovers(root):
    return [os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs if ".tmp." in f]


def readable(root):
    """Every JSON parses and every safetensors header parses: nothing half-written is there."""
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            try:
                if f.endswith(".json"):
                    with open(p) as fh:
                        json.load(fh)
                elif f.endswith(".safetensors"):
                    safetensors_tensors(p)
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                return "%s unreadable (%s)" % (os.path.relpath(p, root), e)
    return None


class Matrix:
    def __init__(self, drifa, work, seed):
        self.drifa, self.work = drifa, work
        self.rng = random.Random(seed)
        self.rows = []
        self.failed = 0

    def row(self, command, case, result, detail):
        self.rows.append((command, case, result, detail))
        if result != "ok":
            self.failed += 1
        print("%-10s %-34s %-5s %s" % (command, case, result, detail), flush=True)

    def prepare(self):
        data = os.path.join(self.work, "data")
        r = sh([self.drifa, "synth", "-q", "-o", data, "--size", "32", "--train-per-class", "8", "--test-per-class", "4"])
        if r.returncode != 0:
            sys.exit("synth failed: " + r.stdout)
        self.cfg = os.path.join(data, "run.toml")
        with open(self.cfg, "w") as f:
            f.write('seed = 3\n[model]\nwidths = "tiny"\ndropout = 0.1\nbn_momentum = 0.1\n'
                    '[data]\nimage_size = 32\nworkers = 2\n'
                    '[[data.modality]]\nname = "derm"\ntrain = "derm/train"\ntest = "derm/test"\n'
                    '[[data.modality]]\nname = "mri"\ntrain = "mri/train"\ntest = "mri/test"\n'
                    '[augment]\nrotation = 10\ntranslate = 2\nbrightness = [0.9, 1.1]\n'
                    '[train]\nbatch_size = 8\nepochs = 3\n')
        # The analysis commands' input: a trained, calibrated run with its uncertainty study.
        self.base = os.path.join(self.work, "base")
        for args in (["train", "-q", "--threads", "2", "-c", self.cfg, "-o", self.base],
                     ["calibrate", "-q", "--threads", "2", "-T", "3", self.base],
                     ["uq", "-q", "--threads", "2", "-T", "3", "--resamples", "100", self.base]):
            r = sh([self.drifa] + args)
            if r.returncode != 0:
                sys.exit("preparing the base run failed: %s\n%s" % (args, r.stdout))

    def commands(self):
        d, c = self.drifa, self.cfg
        t = ["--threads", "2"]
        # name, argv for a target folder, the input the target starts as (None: empty), outputs compared
        return [
            ("train", lambda o: [d, "train", "-q", *t, "-c", c, "-o", o, "--resume"], None,
             ["config.json", "split.json", "log.json", "log.csv", "best.safetensors", "checkpoint.safetensors",
              "done.json", "metrics.json", "predictions.csv", "partners.safetensors"]),
            ("ensemble", lambda o: [d, "ensemble", "-q", *t, "-k", "2", "--epochs", "2", "-c", c, "-o", o], None,
             ["ensemble.json", "member-*/best.safetensors", "member-*/done.json", "member-*/log.json", "member-*/metrics.json"]),
            ("cv", lambda o: [d, "cv", "-q", *t, "-k", "2", "--epochs", "2", "--resamples", "100", "-c", c, "-o", o], None,
             ["cv.json", "cv_metrics.json", "predictions.csv", "fold-*/best.safetensors", "fold-*/log.json"]),
            ("calibrate", lambda o: [d, "calibrate", "-q", *t, "-T", "3", o], "base",
             ["calibration.json", "best.safetensors"]),
            ("uq", lambda o: [d, "uq", "-q", *t, "-T", "3", "--resamples", "100", o], "base",
             ["uq/uq.json", "uq/samples.csv"]),
            ("report", lambda o: [d, "report", "-q", o], "base", ["report.html", "plots/*"]),
        ]

    def fresh(self, name, start, sub):
        target = os.path.join(self.work, name, sub)
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if start == "base":
            shutil.copytree(self.base, target, ignore=shutil.ignore_patterns(".drifa.lock"))
            if name == "report":
                for f in ("report.html",):
                    if os.path.exists(os.path.join(target, f)):
                        os.remove(os.path.join(target, f))
                shutil.rmtree(os.path.join(target, "plots"), ignore_errors=True)
            if name == "uq":
                shutil.rmtree(os.path.join(target, "uq"), ignore_errors=True)
            if name == "calibrate" and os.path.exists(os.path.join(target, "calibration.json")):
                os.remove(os.path.join(target, "calibration.json"))
        return target

    def compare(self, ref, got, patterns):
        want = outputs(ref, patterns)
        if not want:
            return "the reference wrote none of " + ", ".join(patterns)
        for rel in want:
            why = same_file(ref, got, rel)
            if why:
                return why
        left = leftovers(got)
        return "temporary files left: " + ", ".join(left) if left else None

    def kills(self, name, argv, start, patterns, n):
        ref = self.fresh(name, start, "ref")
        t0 = time.time()
        r = sh(argv(ref))
        took = time.time() - t0
        if r.returncode != 0:
            self.row(name, "uninterrupted", "FAIL", r.stdout.strip()[-300:])
            return None
        self.row(name, "uninterrupted", "ok", "%.1f s, %d files compared" % (took, len(outputs(ref, patterns))))
        for k in range(n):
            # A point that lands inside the run: a run that finishes first is timed and the
            # point drawn again within it (a run's length varies with the machine's load).
            span = took
            for _ in range(4):
                target = self.fresh(name, start, "kill-%d" % k)
                at = self.rng.uniform(0.05, 0.95) * span
                t1 = time.time()
                p = subprocess.Popen(argv(target), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(at)
                finished = p.poll() is not None
                if not finished:
                    p.send_signal(signal.SIGKILL)
                p.wait()
                if not finished:
                    break
                span = min(span, time.time() - t1)
            had = len(outputs(target, patterns))
            r = sh(argv(target))
            case = "kill -9 at %.2f s (%d/%d outputs)" % (at, had, len(outputs(ref, patterns)))
            if finished:
                case = "finished before %.2f s" % at
            if r.returncode != 0:
                self.row(name, case, "FAIL", "rerun: " + r.stdout.strip()[-300:])
                continue
            why = self.compare(ref, target, patterns)
            self.row(name, case, "ok" if why is None else "FAIL", "rerun equal" if why is None else why)
        return ref

    def disk_full(self, name, argv, start, patterns, ref):
        mnt = os.path.join(self.work, name, "full-mnt")
        os.makedirs(mnt, exist_ok=True)
        target = os.path.join(mnt, "full")
        src = self.fresh(name, start, "full-src")
        before = dir_bytes(src) if start else 0
        needed = dir_bytes(ref) - before
        size = max(before + needed // 2, 64 * 1024)
        size = (size + 4095) // 4096 * 4096
        r = sh(["mount", "-t", "tmpfs", "-o", "size=%d" % size, "tmpfs", mnt])
        if r.returncode != 0:
            self.row(name, "disk full", "skip", "cannot mount a tmpfs here (root needed): " + r.stdout.strip())
            return
        try:
            if start:
                shutil.copytree(src, target)
            r = sh(argv(target))
            msg = r.stdout.strip()
            clear = ("No space left" in msg or "disk full" in msg) and "error" in msg
            bad = readable(target) if os.path.exists(target) else None
            left = leftovers(target) if os.path.exists(target) else []
            case = "tmpfs of %d KiB (needs %d more)" % (size // 1024, needed // 1024)
            if r.returncode == 0:
                self.row(name, case, "FAIL", "exit 0 on a full disk")
            elif not clear:
                self.row(name, case, "FAIL", "unclear error: " + msg[-300:])
            elif bad or left:
                self.row(name, case, "FAIL", bad or "temporary files left: " + ", ".join(left))
            else:
                self.row(name, case, "ok", msg.splitlines()[-1][:160])
            sh(["mount", "-o", "remount,size=256m", mnt])
            r = sh(argv(target))
            if r.returncode != 0:
                self.row(name, "rerun with space", "FAIL", r.stdout.strip()[-300:])
            else:
                why = self.compare(ref, target, patterns)
                self.row(name, "rerun with space", "ok" if why is None else "FAIL", "equal" if why is None else why)
        finally:
            sh(["umount", "-l", mnt])


def dir_bytes(root):
    total = 0
    for d, _, fs in os.walk(root):
        for f in fs:
            total += (os.path.getsize(os.path.join(d, f)) + 4095) // 4096 * 4096
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("drifa")
    ap.add_argument("work")
    ap.add_argument("--kills", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="")
    ap.add_argument("--no-disk-full", action="store_true")
    a = ap.parse_args()
    if not 1 <= a.kills <= 5:
        sys.exit("--kills: found %d, allowed 1 to 5" % a.kills)
    # A fresh work folder each time (a tmpfs left mounted by a killed run is let go first).
    for d, _, _ in os.walk(a.work):
        if os.path.ismount(d):
            sh(["umount", "-l", d])
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    m = Matrix(os.path.abspath(a.drifa), os.path.abspath(a.work), a.seed)
    m.prepare()
    only = set(filter(None, a.only.split(",")))
    print("%-10s %-34s %-5s %s" % ("command", "case", "", "detail"))
    for name, argv, start, patterns in m.commands():
        if only and name not in only:
            continue
        ref = m.kills(name, argv, start, patterns, a.kills)
        if ref and not a.no_disk_full:
            m.disk_full(name, argv, start, patterns, ref)
    cells = len(m.rows)
    print("%d passed, %d failed" % (cells - m.failed, m.failed))
    sys.exit(1 if m.failed else 0)


if __name__ == "__main__":
    main()
