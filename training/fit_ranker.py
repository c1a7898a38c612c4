"""Fitting the learned ranker's combination on the dev half of the recommender evaluation.

For every dev query (author, category and mixed proxies, and the cold-start queries where a category's name and
description are the only interest) the features of :mod:`recommender.ranking.features` are computed over the
day's candidates through the product's own kernel; the combination is a pairwise logistic model (RankNet with a
linear scorer): for each relevant paper, differences to hard negatives (the best-ranked non-relevant papers by the
previous score) and to random ones, each query weighing the same within its proxy and each proxy the same
overall. Two weight vectors: ``warm`` on the like-based queries (plus, when given, profiles grown by the
simulated feedback loop, which carry dislikes), ``cold`` on the interest-only ones. The result is written as
``data/models/ranker/ranker.json`` (and the background statistics as ``background.npz`` beside it); the product
loads it (:mod:`recommender.ranking.learned`). Test-half queries are never used here.
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.ranking.features import FEATURES
from recommender.ranking.learned import BACKGROUND_FILE, MODEL_FILE, RankerModel

log = logging.getLogger(__name__)

MIX = FEATURES.index("mix_soft")
FITTED = tuple(f for f in FEATURES if f != "dis_penalty")  # dis_penalty's weight is set by a rule, not fitted


@dataclass
class Sample:
    """One query's features over its candidates and which candidates are relevant."""

    feats: np.ndarray  # (n, F) in FEATURES order
    relevant: np.ndarray  # (n,) bool
    kind: str  # author | category | mixed | cold | feedback


def standardisation(samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
    allf = np.concatenate([s.feats for s in samples])
    return allf.mean(axis=0).astype(np.float32), np.maximum(allf.std(axis=0), 1e-6).astype(np.float32)


# how much each kind of query weighs in the fit: the category proxy is solved by the category features alone,
# so it gets less say than the author-like interests (one's own next paper) and mixed interests
KIND_WEIGHT = {"author": 1.0, "mixed": 1.0, "category": 0.25, "feedback": 0.5, "cold": 1.0}


def pairs(samples: Sequence[Sample], mean: np.ndarray, scale: np.ndarray, hard: int = 20, rand: int = 20,
          seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Difference vectors (relevant minus non-relevant, standardised) and their weights: every query weighs the
    same within its kind, every kind as ``KIND_WEIGHT`` says."""
    rng = np.random.default_rng(seed)
    per_kind: dict[str, int] = defaultdict(int)
    for s in samples:
        per_kind[s.kind] += 1
    diffs, weights = [], []
    for s in samples:
        pos = np.flatnonzero(s.relevant)
        neg = np.flatnonzero(~s.relevant)
        if not len(pos) or not len(neg):
            continue
        z = (s.feats - mean) / scale
        order = neg[np.argsort(-s.feats[neg, MIX], kind="stable")]
        chosen = np.unique(np.r_[order[:hard], rng.choice(neg, size=min(rand, len(neg)), replace=False)])
        d = (z[pos][:, None, :] - z[chosen][None, :, :]).reshape(-1, z.shape[1])
        diffs.append(d)
        weights.append(np.full(len(d), KIND_WEIGHT.get(s.kind, 1.0) / (len(d) * per_kind[s.kind] * len(per_kind))))
    return np.concatenate(diffs), np.concatenate(weights)


def fit_weights(samples: Sequence[Sample], mean: np.ndarray, scale: np.ndarray, c: float = 1.0,
                use: Sequence[str] = FITTED, seed: int = 0) -> np.ndarray:
    """Pairwise logistic regression (no intercept) in the standardised space; features not in ``use`` get 0."""
    from sklearn.linear_model import LogisticRegression

    d, w = pairs(samples, mean, scale, seed=seed)
    cols = [FEATURES.index(f) for f in use]
    x = np.concatenate([d[:, cols], -d[:, cols]])
    y = np.r_[np.ones(len(d)), np.zeros(len(d))]
    clf = LogisticRegression(C=c, fit_intercept=False, max_iter=2000)
    clf.fit(x, y, sample_weight=np.r_[w, w] * len(w))
    out = np.zeros(len(FEATURES), np.float32)
    out[cols] = clf.coef_.ravel()
    return out


def ndcg_of(samples: Sequence[Sample], scores: Sequence[np.ndarray], k: int = 10) -> dict[str, float]:
    """Mean nDCG@k per kind for given scores of each sample's candidates."""
    by: dict[str, list[float]] = defaultdict(list)
    for s, sc in zip(samples, scores, strict=True):
        order = np.argsort(-sc, kind="stable")[:k]
        gains = s.relevant[order].astype(np.float64)
        dcg = float((gains / np.log2(np.arange(2, len(gains) + 2))).sum())
        ideal = float((1 / np.log2(np.arange(2, min(int(s.relevant.sum()), k) + 2))).sum())
        by[s.kind].append(dcg / ideal if ideal else 0.0)
    return {kind: round(float(np.mean(v)), 4) for kind, v in by.items()}


def choose_c(samples: Sequence[Sample], mean: np.ndarray, scale: np.ndarray, grid: Sequence[float],
             fold_of: Sequence[int], use: Sequence[str] = FITTED) -> tuple[float, dict[str, dict[str, float]]]:
    """The regularisation with the best mean (over kinds) two-fold cross-validated nDCG@10 on the dev samples."""
    table: dict[str, dict[str, float]] = {}
    best, best_c = -1.0, grid[0]
    folds = np.asarray(fold_of)
    for c in grid:
        scores: list[np.ndarray | None] = [None] * len(samples)
        for f in (0, 1):
            train = [s for s, g in zip(samples, folds, strict=True) if g != f]
            w = fit_weights(train, mean, scale, c, use)
            for i in np.flatnonzero(folds == f).tolist():
                scores[i] = ((samples[i].feats - mean) / scale) @ w
        got = ndcg_of(samples, [s for s in scores if s is not None])
        table[str(c)] = got
        m = float(np.mean(list(got.values())))
        if m > best:
            best, best_c = m, c
    return best_c, table


def build_model(warm: Sequence[Sample], cold: Sequence[Sample], c_warm: float, c_cold: float,
                meta: dict[str, object], use: Sequence[str] = FITTED) -> RankerModel:
    """One standardisation (over the warm samples) and the two weight vectors."""
    mean, scale = standardisation(warm)
    w_warm = fit_weights(warm, mean, scale, c_warm, use)
    w_cold = fit_weights(cold, mean, scale, c_cold, [f for f in use if f in COLD_FEATURES]) if cold else \
        np.zeros(len(FEATURES), np.float32)
    return RankerModel(tuple(FEATURES), mean, scale, w_warm, w_cold, meta=dict(meta)).with_dislike_rule()


# features that mean something for a profile with only an interest sentence (no likes, no dislikes)
# (few cold-start queries: two weights are all they support)
COLD_FEATURES = ("emb_max", "lex_max")


def write_model(model: RankerModel, out_dir: Path, emb_mean: np.ndarray, emb_prec: np.ndarray) -> Path:
    """Write ``ranker.json`` and ``background.npz`` (temp files, then renamed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MODEL_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(model.to_dict(), indent=1))
    tmp.replace(path)
    bg = out_dir / BACKGROUND_FILE
    tmpb = out_dir / (BACKGROUND_FILE + ".tmp.npz")
    np.savez_compressed(tmpb, emb_mean=emb_mean.astype(np.float32), emb_prec=emb_prec.astype(np.float32))
    tmpb.replace(bg)
    return path
