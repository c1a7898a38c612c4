"""Combining the SHA-RNN with the tf-idf logistic regression, and per-category thresholds: fitted on validation.

- ``fit_stack``: p = sigmoid(a z_sharnn + b z_tfidf + c), three numbers shared by every category, fitted by
  minimising the binary cross-entropy over all (paper, category) pairs of the validation part; with b fixed at
  0 it is Platt scaling of one model (``fit_platt``). ``average``: the mean of the two Platt-scaled
  probabilities with a weight chosen on validation sample-F1.
- ``tune_category_thresholds``: coordinate ascent on sample-F1 (the per-paper F1 averaged over papers), one
  category's threshold at a time, starting from the global one; ``shrink``: t_c = (n_c t*_c + k t) / (n_c + k)
  with n_c the category's validation positives, so a category seen a handful of times stays near the global
  threshold; ``choose_shrinkage``: k by two-fold cross-validation inside the validation papers.
- ``paired_bootstrap``: a confidence interval for the difference of two models' mean per-paper F1 on the same
  papers.
"""
from __future__ import annotations

import logging

import numpy as np
from scipy.optimize import minimize

from training.metrics import predict_sets, tune_threshold

log = logging.getLogger(__name__)

GRID = np.concatenate([[0.02, 0.05], np.arange(0.1, 0.91, 0.05), [0.95]])
SHRINK_CHOICES = (0.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1e9)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(z, -40, 40)))


def fit_stack(zs: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    """Coefficients (one per logit matrix, then the bias) minimising the mean BCE of sigmoid(sum a_i z_i + c)."""
    zz = [z.astype(np.float64).ravel() for z in zs]
    t = y.astype(np.float64).ravel()

    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = sum(a * v for a, v in zip(theta[:-1], zz, strict=True)) + theta[-1]
        # log(1 + e^z) - t z, stably
        loss = np.logaddexp(0, z) - t * z
        g = sigmoid(z) - t
        grad = np.array([float(np.dot(g, v)) for v in zz] + [float(g.sum())]) / len(t)
        return float(loss.mean()), grad

    res = minimize(f, np.array([1.0] * len(zs) + [0.0]), jac=True, method="L-BFGS-B")
    return np.asarray(res.x)


def apply_stack(theta: np.ndarray, zs: list[np.ndarray]) -> np.ndarray:
    z = sum(a * v.astype(np.float64) for a, v in zip(theta[:-1], zs, strict=True)) + theta[-1]
    return sigmoid(z).astype(np.float32)


def fit_platt(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return fit_stack([z], y)


def per_paper_f1(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    tp = (y & pred).sum(1).astype(np.float64)
    denom = y.sum(1) + pred.sum(1)
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def average(p1: np.ndarray, p2: np.ndarray, y: np.ndarray,
            weights: np.ndarray | None = None) -> tuple[float, float]:
    """The weight w of ``p1`` in w p1 + (1 - w) p2 and its global threshold, best on sample-F1 of ``y``."""
    best = (-1.0, 0.5, 0.5)
    for w in (np.linspace(0, 1, 11) if weights is None else weights):
        p = w * p1 + (1 - w) * p2
        thr = tune_threshold(p, y)
        f = float(per_paper_f1(y, predict_sets(p, thr)).mean())
        if f > best[0]:
            best = (f, float(w), thr)
    return best[1], best[2]


def tune_category_thresholds(probs: np.ndarray, y: np.ndarray, start: float, passes: int = 2) -> np.ndarray:
    """Per-category thresholds maximising validation sample-F1 (coordinate ascent from ``start``)."""
    n, c = probs.shape
    y = y.astype(bool)
    top = probs.argmax(1)
    thr = np.full(c, start, dtype=np.float64)
    pred = predict_sets(probs, thr).astype(bool)
    tp = (y & pred).sum(1).astype(np.float64)
    npred = pred.sum(1).astype(np.float64)
    ntrue = y.sum(1).astype(np.float64)
    for _ in range(passes):
        for j in range(c):
            col_old = pred[:, j]
            base_tp = tp - (col_old & y[:, j])
            base_np = npred - col_old
            best_f, best_t = -1.0, thr[j]
            for t in GRID:
                col = (probs[:, j] >= t) | (top == j)
                t_tp = base_tp + (col & y[:, j])
                t_np = base_np + col
                f = float(np.mean(2 * t_tp / np.maximum(t_np + ntrue, 1)))
                if f > best_f + 1e-12 or (abs(f - best_f) <= 1e-12 and abs(t - start) < abs(best_t - start)):
                    best_f, best_t = f, float(t)
            thr[j] = best_t
            col = (probs[:, j] >= best_t) | (top == j)
            tp = base_tp + (col & y[:, j])
            npred = base_np + col
            pred[:, j] = col
    return thr


def shrink(thresholds: np.ndarray, global_t: float, positives: np.ndarray, k: float) -> np.ndarray:
    return (positives * thresholds + k * global_t) / (positives + k)


def choose_shrinkage(probs: np.ndarray, y: np.ndarray, global_t: float, seed: int = 13) -> tuple[float, dict]:
    """k of ``shrink`` by two-fold cross-validation inside the validation papers: tune on one half, score the
    shrunk thresholds on the other, both ways; returns the best k and every k's mean sample-F1."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(probs))
    halves = [perm[: len(perm) // 2], perm[len(perm) // 2:]]
    scores = {k: 0.0 for k in SHRINK_CHOICES}
    for a, b in ((0, 1), (1, 0)):
        fit, score = halves[a], halves[b]
        tuned = tune_category_thresholds(probs[fit], y[fit], global_t)
        pos = y[fit].sum(0).astype(np.float64)
        for k in SHRINK_CHOICES:
            t = shrink(tuned, global_t, pos, k)
            scores[k] += float(per_paper_f1(y[score].astype(bool), predict_sets(probs[score], t).astype(bool))
                               .mean()) / 2
    best = max(scores, key=lambda k: scores[k])
    return best, {str(k): v for k, v in scores.items()}


def paired_bootstrap(f_a: np.ndarray, f_b: np.ndarray, n: int = 1000, seed: int = 13) -> dict:
    """Mean of f_a - f_b (per-paper scores of two models on the same papers) and its 95% percentile interval."""
    d = f_a - f_b
    rng = np.random.default_rng(seed)
    means = np.array([d[rng.integers(0, len(d), len(d))].mean() for _ in range(n)])
    return {"diff": float(d.mean()), "low": float(np.percentile(means, 2.5)),
            "high": float(np.percentile(means, 97.5))}
