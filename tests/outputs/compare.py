#!/usr/bin/env python3
"""Compares every JSON and CSV output of two tests/outputs/every_command.sh folders.

    compare.py A B [--tol 1e-6]

Numbers must agree to the tolerance (absolute, or relative for large values), everything else
exactly, after each folder's own path is replaced by <ROOT>. What measures the clock (seconds,
rates, dates) or the machine is skipped by name, and listed. Exit 1 on any difference, with each
one named by file and place."""
import argparse
import csv
import io
import json
import math
import re
import sys
from pathlib import Path

# Keys and columns that measure time or the machine, not the computation.
SKIP = re.compile(r"seconds|elapsed|per_second|_per_s$|^date$|created|started|finished|^time$|wall|hostname|^pid$")
IGNORED_FILES = {"serve.log"}


def number(s):
    try:
        v = float(s)
    except (TypeError, ValueError):
        return None
    return v


class Compare:
    def __init__(self, a, b, tol):
        self.a, self.b, self.tol = a, b, tol
        self.diffs, self.skipped = [], set()

    def text(self, s, root):
        return s.replace(str(root), "<ROOT>")

    def value(self, where, x, y):
        if isinstance(x, bool) or isinstance(y, bool):
            if x != y:
                self.diffs.append(f"{where}: {x!r} != {y!r}")
            return
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            self.num(where, x, y)
        elif isinstance(x, str) and isinstance(y, str):
            xs, ys = self.text(x, self.a), self.text(y, self.b)
            nx, ny = number(xs), number(ys)
            if nx is not None and ny is not None:
                self.num(where, nx, ny)
            elif xs != ys:
                self.diffs.append(f"{where}: {xs[:120]!r} != {ys[:120]!r}")
        elif isinstance(x, dict) and isinstance(y, dict):
            if set(x) != set(y):
                self.diffs.append(f"{where}: keys differ: only in A {sorted(set(x) - set(y))}, only in B {sorted(set(y) - set(x))}")
            for k in sorted(set(x) & set(y)):
                if SKIP.search(k):
                    self.skipped.add(k)
                    continue
                self.value(f"{where}.{k}", x[k], y[k])
        elif isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                self.diffs.append(f"{where}: {len(x)} items != {len(y)}")
            for i, (u, v) in enumerate(zip(x, y)):
                self.value(f"{where}[{i}]", u, v)
        elif x is None and y is None:
            pass
        else:
            self.diffs.append(f"{where}: {type(x).__name__} {str(x)[:80]} != {type(y).__name__} {str(y)[:80]}")

    def num(self, where, x, y):
        if math.isnan(x) and math.isnan(y):
            return
        if not (abs(x - y) <= self.tol * max(1.0, abs(x), abs(y))):
            self.diffs.append(f"{where}: {x!r} != {y!r}")

    def csv_file(self, rel):
        ra = list(csv.reader(io.StringIO((self.a / rel).read_text())))
        rb = list(csv.reader(io.StringIO((self.b / rel).read_text())))
        if not ra or not rb or ra[0] != rb[0]:
            self.diffs.append(f"{rel}: headers differ: {ra[:1]} != {rb[:1]}")
            return
        head = ra[0]
        if len(ra) != len(rb):
            self.diffs.append(f"{rel}: {len(ra)} rows != {len(rb)}")
        for i, (u, v) in enumerate(zip(ra[1:], rb[1:]), start=2):
            if len(u) != len(v):
                self.diffs.append(f"{rel}:{i}: {len(u)} cells != {len(v)}")
                continue
            for j, (p, q) in enumerate(zip(u, v)):
                name = head[j] if j < len(head) else str(j)
                if SKIP.search(name):
                    self.skipped.add(name)
                    continue
                self.value(f"{rel}:{i}:{name}", p, q)

    def run(self):
        files = lambda root: {p.relative_to(root) for p in root.rglob("*")
                              if p.is_file() and p.suffix in (".json", ".csv", ".txt") and "data" not in p.relative_to(root).parts[:1]
                              and p.name not in IGNORED_FILES}
        fa, fb = files(self.a), files(self.b)
        for rel in sorted(fa ^ fb):
            self.diffs.append(f"{rel}: only in {'A' if rel in fa else 'B'}")
        for rel in sorted(fa & fb):
            if rel.suffix == ".json":
                self.value(str(rel), json.loads((self.a / rel).read_text()), json.loads((self.b / rel).read_text()))
            elif rel.suffix == ".csv":
                self.csv_file(rel)
            else:  # text tables: compare the numbers on each line, the rest exactly
                la, lb = (self.a / rel).read_text().splitlines(), (self.b / rel).read_text().splitlines()
                if len(la) != len(lb):
                    self.diffs.append(f"{rel}: {len(la)} lines != {len(lb)}")
                for i, (u, v) in enumerate(zip(la, lb), start=1):
                    if re.search(r"seconds|time|/s\b", u):
                        continue
                    self.value(f"{rel}:{i}", u.split(), v.split())
        return len(fa & fb)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args()
    c = Compare(args.a.resolve(), args.b.resolve(), args.tol)
    n = c.run()
    print(f"compared {n} JSON/CSV/text files; skipped as clock or machine readings: {', '.join(sorted(c.skipped)) or 'none'}")
    for d in c.diffs[:200]:
        print("DIFF", d)
    if c.diffs:
        print(f"{len(c.diffs)} differences (tolerance {args.tol})")
        sys.exit(1)
    print(f"equal within {args.tol}")


if __name__ == "__main__":
    main()
