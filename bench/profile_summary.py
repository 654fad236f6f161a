#!/usr/bin/env python3
"""Tabulates drifa_bench --profile traces: where a step's time goes, operator by operator.

usage: profile_summary.py TRACE.json [TRACE2.json ...] [--steps N] [--top K]

Each trace is LibTorch's legacy profiler output (a JSON list of complete events: name, ts, dur,
tid, in microseconds). An event's self time is its duration less its direct children's on the
same thread; ops are grouped by name and given per step (--steps: the timed steps the trace
holds). With several traces the columns sit side by side, ranked by the last trace's self time,
with the time the last adds over the first.
"""
import argparse
import collections
import json
import sys


def self_times(path):
    """{name: [self_us, calls]} and the traced wall time (first start to last end), in us."""
    try:
        with open(path) as f:
            trace = json.load(f)
        events = [e for e in trace if isinstance(e, dict) and e.get("ph") == "X"]
        for e in events:
            float(e["ts"]), float(e["dur"]), e["tid"], e["name"]
    except (OSError, ValueError, TypeError, KeyError) as err:
        sys.exit(f"profile_summary.py: {path}: not a readable drifa_bench --profile trace ({err!r})")
    if not isinstance(trace, list) or not events:
        sys.exit(f"profile_summary.py: {path}: no operator events (expected a JSON list of complete events)")
    by_tid = collections.defaultdict(list)
    for e in events:
        by_tid[e["tid"]].append((float(e["ts"]), float(e["dur"]), e["name"]))
    table = collections.defaultdict(lambda: [0.0, 0])
    for evs in by_tid.values():
        evs.sort(key=lambda t: (t[0], -t[1]))  # a parent before the children it contains
        stack = []  # [end, name, children's us, dur]

        def close(entry):
            _, name, child, dur = entry
            table[name][0] += dur - child
            table[name][1] += 1

        for ts, dur, name in evs:
            while stack and ts >= stack[-1][0]:
                close(stack.pop())
            if stack:
                stack[-1][2] += dur
            stack.append([ts + dur, name, 0.0, dur])
        while stack:
            close(stack.pop())
    starts = [float(e["ts"]) for e in events]
    ends = [float(e["ts"]) + float(e["dur"]) for e in events]
    wall = max(ends) - min(starts)
    return table, wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("traces", nargs="+")
    ap.add_argument("--steps", type=int, default=1, help="timed steps in each trace")
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    if a.steps < 1 or a.top < 1:
        ap.error("--steps and --top must be at least 1")
    runs = [self_times(p) for p in a.traces]
    ms = lambda us: us / 1000.0 / a.steps
    last = runs[-1][0]
    names = sorted(set().union(*(t.keys() for t, _ in runs)), key=lambda n: -last.get(n, [0, 0])[0])
    head = "".join(f"{'ms/step':>10}{'calls':>7}{'%':>6}" for _ in runs)
    extra = f"{'added ms':>10}" if len(runs) > 1 else ""
    print(f"{'operator (self time)':<44}{head}{extra}")
    for n in names[: a.top]:
        row = ""
        for t, _ in runs:
            us, calls = t.get(n, [0.0, 0])
            total = sum(v[0] for v in t.values()) or 1.0
            row += f"{ms(us):10.2f}{calls / a.steps:7.0f}{100 * us / total:6.1f}"
        if len(runs) > 1:
            row += f"{ms(last.get(n, [0, 0])[0] - runs[0][0].get(n, [0, 0])[0]):10.2f}"
        print(f"{n[:43]:<44}{row}")
    print(f"{'all operators':<44}" + "".join(
        f"{ms(sum(v[0] for v in t.values())):10.2f}{sum(v[1] for v in t.values()) / a.steps:7.0f}{'':>6}" for t, _ in runs))
    print(f"{'traced wall time':<44}" + "".join(f"{ms(w):10.2f}{'':>13}" for _, w in runs))


if __name__ == "__main__":
    main()
