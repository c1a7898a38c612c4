"""Classification metrics shared by training, evaluation and the baselines.

A prediction set is every label with probability >= threshold, plus always the top one (a paper has at least
one category). Master probabilities are derived the same way for every model: the "mix" of the two most probable
categories of the group, 1 - (1 - p1)(1 - p2); the predicted masters are those >= threshold plus the group of the
top category. Sample-F1 is the per-paper F1 averaged over all papers (not per batch).
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score


def predict_sets(probs: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
    """Labels at or above the threshold (one global, or one per category), plus always the top one."""
    pred = (probs >= threshold).astype(np.uint8)
    pred[np.arange(len(probs)), probs.argmax(1)] = 1
    return pred


def master_probs(probs: np.ndarray, group_index: np.ndarray, n_groups: int) -> np.ndarray:
    out = np.zeros((probs.shape[0], n_groups), dtype=np.float64)
    for g in range(n_groups):
        cols = probs[:, group_index == g]
        if cols.shape[1] == 1:
            out[:, g] = cols[:, 0]
            continue
        top2 = np.sort(cols, axis=1)[:, -2:]
        out[:, g] = 1 - (1 - top2[:, 0]) * (1 - top2[:, 1])
    return out


def master_sets(probs: np.ndarray, group_index: np.ndarray, n_groups: int, threshold: float) -> np.ndarray:
    mp = master_probs(probs, group_index, n_groups)
    pred = (mp >= threshold).astype(np.uint8)
    pred[np.arange(len(probs)), group_index[probs.argmax(1)]] = 1
    return pred


def sample_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(f1_score(y_true, y_pred, average="samples", zero_division=0))


def tune_threshold(probs: np.ndarray, y_true: np.ndarray, grid: np.ndarray | None = None) -> float:
    """The global threshold maximising category sample-F1 on a validation set."""
    if grid is None:  # wide at both ends: naive Bayes' probabilities are extreme
        grid = np.concatenate([[0.02, 0.05], np.arange(0.1, 0.91, 0.05), [0.95, 0.98, 0.99, 0.995]])
    scores = [sample_f1(y_true, predict_sets(probs, t)) for t in grid]
    return float(grid[int(np.argmax(scores))])


def full_report(probs: np.ndarray, y_true: np.ndarray, group_index: np.ndarray, groups: list[str],
                threshold: float, category_thresholds: np.ndarray | None = None) -> dict:
    """Sample/micro/macro F1 for categories and master categories, and per-group scores. Categories are
    predicted at ``category_thresholds`` (one per category) when given, masters always at ``threshold``."""
    n_groups = len(groups)
    pred = predict_sets(probs, threshold if category_thresholds is None else category_thresholds)
    mpred = master_sets(probs, group_index, n_groups, threshold)
    mtrue = np.zeros((len(y_true), n_groups), dtype=np.uint8)
    for g in range(n_groups):
        mtrue[:, g] = y_true[:, group_index == g].max(1)
    present = y_true.sum(0) > 0
    per_group = {}
    for g, name in enumerate(groups):
        cols = group_index == g
        per_group[name] = {
            "papers": int(mtrue[:, g].sum()),
            "master_f1": float(f1_score(mtrue[:, g], mpred[:, g], zero_division=0)),
            "category_micro_f1": float(f1_score(y_true[:, cols], pred[:, cols], average="micro", zero_division=0)),
        }
    return {
        "papers": int(len(y_true)),
        "threshold": float(threshold),
        "per_category_thresholds": category_thresholds is not None,
        "category_sample_f1": sample_f1(y_true, pred),
        "master_sample_f1": sample_f1(mtrue, mpred),
        "category_micro_f1": float(f1_score(y_true, pred, average="micro", zero_division=0)),
        "category_macro_f1": float(f1_score(y_true[:, present], pred[:, present], average="macro", zero_division=0)),
        "master_micro_f1": float(f1_score(mtrue, mpred, average="micro", zero_division=0)),
        "master_macro_f1": float(f1_score(mtrue, mpred, average="macro", zero_division=0)),
        "per_group": per_group,
    }
