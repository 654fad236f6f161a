#!/usr/bin/env python3
"""The include graph between the library's folders (src/X and include/drifa/X).

    scripts/include_graph.py [REPO]

Prints each folder's includes of other folders, the layers (a folder sits one above the highest
folder it includes) and exits 1 when folders include each other (directly or around a loop)."""
import collections
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[1])
edges = collections.defaultdict(set)
for f in list((root / "src").rglob("*.cpp")) + list((root / "include/drifa").rglob("*.h")):
    parts = f.relative_to(root).parts
    folder = parts[1] if parts[0] == "src" else (parts[2] if len(parts) > 3 else None)
    if folder is None:
        continue
    edges[folder]  # every folder appears
    for m in re.finditer(r'#include "drifa/([a-z_]+)/', f.read_text()):
        if m.group(1) != folder:
            edges[folder].add(m.group(1))
nodes = sorted(set(edges) | {b for v in edges.values() for b in v})
for k in nodes:
    print(f"{k} -> {', '.join(sorted(edges[k])) or '(nothing)'}")

# Tarjan's strongly connected components: a component of more than one folder is a loop.
order, low, stack, on, loops, counter = {}, {}, [], set(), [], [0]
def visit(v):
    order[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges[v]:
        if w not in order:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], order[w])
    if low[v] == order[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            loops.append(sorted(comp))
for v in nodes:
    if v not in order:
        visit(v)
if loops:
    print("folders that include each other:", loops)
    sys.exit(1)
level = {}
def layer(v):
    if v not in level:
        level[v] = 1 + max((layer(w) for w in edges[v]), default=-1)
    return level[v]
for l in sorted({layer(v) for v in nodes}):
    print(f"layer {l}: {', '.join(v for v in nodes if level[v] == l)}")
print("no folder includes another that includes it back")
