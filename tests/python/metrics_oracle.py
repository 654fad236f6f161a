"""scikit-learn as the oracle for DRIFA's metrics.

metrics_oracle.py IO.safetensors METRICS.json: IO holds y{i} [N] and p{i} [N, K] for each case
i; METRICS.json the C++ results. Exits 1 on any difference above 1e-9.
"""
import json
import os
import sys

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import drifa_torch  # noqa: E402


def main():
    io, _ = drifa_torch.load_safetensors(sys.argv[1])
    got = json.load(open(sys.argv[2]))
    worst = 0.0
    for i, g in enumerate(got):
        y = io[f"y{i}"].numpy()
        p = io[f"p{i}"].numpy().astype(np.float64)
        k = p.shape[1]
        pred = p.argmax(1)
        labels = list(range(k))
        pr, rc, f1, sup = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
        mp, mr, mf, _ = precision_recall_fscore_support(y, pred, labels=labels, average="macro", zero_division=0)
        auc = roc_auc_score(y, p[:, 1]) if k == 2 else roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels)
        want = dict(accuracy=accuracy_score(y, pred), balanced_accuracy=balanced_accuracy_score(y, pred), macro_precision=mp, macro_recall=mr, macro_f1=mf, roc_auc_macro=auc)
        for key, v in want.items():
            worst = max(worst, abs(g[key] - v))
        for c in range(k):
            pc = g["per_class"][str(c)]
            worst = max(worst, abs(pc["precision"] - pr[c]), abs(pc["recall"] - rc[c]), abs(pc["f1"] - f1[c]))
            assert pc["support"] == sup[c], (i, c)
        assert g["confusion_matrix"] == confusion_matrix(y, pred, labels=labels).tolist(), i
    print(f"cases={len(got)} max_abs_diff={worst:.3e}")
    return 0 if worst <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
