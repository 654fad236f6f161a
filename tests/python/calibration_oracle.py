"""Independent implementations of DRIFA's calibration pieces, as the oracle of tests/test_calibration.cpp.

calibration_oracle.py IO.safetensors RESULTS.json: IO holds the inputs the C++ side used, RESULTS
its answers. Checked here:
  temperature{i}: samples s{i} [S, N, K], labels y{i}: SciPy's bounded scalar minimisation of the
                  NLL of mean_s softmax(log p_s / T) (within 1e-3 of the C++ temperature);
  conformal:      calibration probs cal_p, labels cal_y, draws cal_u; test probs test_p, draws
                  test_u; for each alpha and score the threshold and the sets (numpy, exactly equal);
  class weights:  labels w_y{i} with k{i} classes: sklearn's compute_class_weight("balanced").
Exits 1 on any mismatch.
"""
import json
import math
import os
import sys

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp
from sklearn.utils.class_weight import compute_class_weight

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import drifa_torch  # noqa: E402


def tempered_nll(logp, y, t):
    lm = logsumexp(log_softmax(logp / t, axis=2), axis=0) - math.log(logp.shape[0])
    return -lm[np.arange(len(y)), y].mean()


def fit_temperature(samples, y):
    logp = np.log(np.clip(samples.astype(np.float64), 1e-12, None))
    grid = np.exp(np.linspace(math.log(0.05), math.log(20.0), 400))
    vals = [tempered_nll(logp, y, t) for t in grid]
    i = int(np.argmin(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    r = minimize_scalar(lambda t: tempered_nll(logp, y, t), bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
    return r.x


def class_scores(p, score, u):
    """scores [N, K] of every class; ranks by decreasing probability, ties by index (stable)."""
    n, k = p.shape
    if score == "lac":
        return 1.0 - p
    out = np.zeros_like(p)
    for i in range(n):
        order = np.argsort(-p[i], kind="stable")
        before = 0.0
        w = 1.0 if score == "aps" else u[i]
        for c in order:
            out[i, c] = before + w * p[i, c]
            before += p[i, c]
    return out


def threshold(cal_scores, alpha):
    n = len(cal_scores)
    k = int(math.ceil((n + 1) * (1 - alpha) - 1e-12))
    if k > n or k < 1:
        return math.inf
    return np.sort(cal_scores)[k - 1]


def main():
    io, _ = drifa_torch.load_safetensors(sys.argv[1])
    got = json.load(open(sys.argv[2]))
    ok = True
    for i, t_cpp in enumerate(got["temperatures"]):
        s = io[f"s{i}"].numpy()
        y = io[f"y{i}"].numpy().astype(np.int64)
        t_ref = fit_temperature(s, y)
        print(f"temperature {i}: drifa {t_cpp:.6f} scipy {t_ref:.6f}")
        ok &= abs(t_cpp - t_ref) <= 1e-3
    cal_p = io["cal_p"].numpy().astype(np.float64)
    cal_y = io["cal_y"].numpy().astype(np.int64)
    cal_u = io["cal_u"].numpy().astype(np.float64)
    test_p = io["test_p"].numpy().astype(np.float64)
    test_u = io["test_u"].numpy().astype(np.float64)
    compared = 0
    for case in got["conformal"]:
        score, alpha = case["score"], case["alpha"]
        cs = class_scores(cal_p, score, cal_u)[np.arange(len(cal_y)), cal_y]
        q = threshold(cs, alpha)
        q_cpp = math.inf if case["threshold"] is None else case["threshold"]
        sets = class_scores(test_p, score, test_u) <= q
        same = q == q_cpp and sets.astype(int).tolist() == case["sets"]
        compared += sets.size
        if not same:
            print(f"conformal {score} alpha={alpha}: threshold drifa {q_cpp} numpy {q}; sets differ")
        ok &= same
    print(f"conformal: {len(got['conformal'])} cases, {compared} set entries compared")
    for i, w_cpp in enumerate(got["class_weights"]):
        y = io[f"w_y{i}"].numpy().astype(np.int64)
        k = len(w_cpp)
        w_ref = compute_class_weight("balanced", classes=np.arange(k), y=y)
        diff = float(np.abs(np.array(w_cpp) - w_ref).max())
        print(f"class weights {i}: max diff {diff:.2e}")
        ok &= diff <= 1e-12
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
