#!/usr/bin/env python3
"""scikit-learn's StratifiedGroupKFold on the items of a CSV (label,group,drifa_fold): prints, for
sklearn's folds and for DRIFA's, whether every group sits in one fold and the largest gap between a
fold's class share and the whole set's, as JSON."""
import json
import sys

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold


def worst_gap(y, folds, k):
    classes = np.unique(y)
    overall = np.array([(y == c).mean() for c in classes])
    gap = 0.0
    for f in range(k):
        sel = y[folds == f]
        if len(sel) == 0:
            return 1.0
        share = np.array([(sel == c).mean() for c in classes])
        gap = max(gap, float(np.abs(share - overall).max()))
    return gap


def grouped(groups, folds):
    seen = {}
    for g, f in zip(groups, folds):
        if seen.setdefault(g, f) != f:
            return False
    return True


def main():
    path, k, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rows = [line.strip().split(",") for line in open(path) if line.strip()]
    y = np.array([int(r[0]) for r in rows])
    groups = np.array([r[1] for r in rows])
    ours = np.array([int(r[2]) for r in rows])
    theirs = np.zeros(len(y), dtype=int)
    for f, (_, test) in enumerate(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups)):
        theirs[test] = f
    print(json.dumps({"sklearn": {"grouped": grouped(groups, theirs), "worst_gap": worst_gap(y, theirs, k)},
                      "drifa": {"grouped": grouped(groups, ours), "worst_gap": worst_gap(y, ours, k)}}))


if __name__ == "__main__":
    main()
