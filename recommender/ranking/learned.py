"""The learned ranker: the product's ranking score, a linear combination of the features of
:mod:`recommender.ranking.features` with weights learned on the evaluation's dev half.

The weights ship in ``data/models/ranker/ranker.json`` (format version, feature list, standardisation, one weight
vector for users with likes, ``warm``, and one for users with only an interest sentence, ``cold``), written by
``arxiv-digest fit-ranker`` (``training/fit_ranker.py``); the background statistics the per-user linear model
needs come from the store's own papers (:func:`background_from`), or from ``background.npz`` shipped beside the
weights when the store is too small. :func:`learned_scores` is what :func:`recommender.ranking.digest.rank_many`
calls for a block of profiles: it returns None for the profiles it cannot serve (no tf-idf rows, a scoring method
other than softmax), which then keep the kernel's own score, so a store without a tf-idf index still ranks.
The threshold (``min_score``) still compares the embedding-only similarity, in cosine units, as before.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.paths import MODELS_DIR
from recommender.ranking.features import FEATURES, LIKE_SIMILARITY, Background, CandidateCategories, block_features
from recommender.ranking.profile import Block, Profile, ScoringParams, score_block

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODEL_DIR = MODELS_DIR / "ranker"
MODEL_FILE = "ranker.json"
BACKGROUND_FILE = "background.npz"
MIN_STORE_BACKGROUND = 1000  # vectors a store needs before its own background replaces the shipped one


@dataclass(frozen=True, eq=False)
class RankerModel:
    """Learned weights: ``score = sum_k weight_k * (feature_k - mean_k) / scale_k``."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    warm: np.ndarray
    cold: np.ndarray
    version: int = FORMAT_VERSION
    meta: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RankerModel:
        if int(d.get("format", 0)) != FORMAT_VERSION:
            raise ValueError(f"ranker model format {d.get('format')} is not {FORMAT_VERSION}")
        feats = tuple(d["features"])
        unknown = [f for f in feats if f not in FEATURES]
        if unknown:
            raise ValueError(f"ranker model uses unknown features: {', '.join(unknown)}")
        arr = {k: np.asarray(d[k], np.float32) for k in ("mean", "scale")}
        w = {k: np.asarray(d["weights"][k], np.float32) for k in ("warm", "cold")}
        if any(len(v) != len(feats) for v in (*arr.values(), *w.values())):
            raise ValueError("ranker model: weights and features differ in length")
        return cls(feats, arr["mean"], np.where(arr["scale"] > 0, arr["scale"], 1).astype(np.float32),
                   w["warm"], w["cold"], int(d.get("version", 1)), d.get("meta"))

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, "version": self.version, "features": list(self.features),
                "mean": [round(float(x), 6) for x in self.mean], "scale": [round(float(x), 6) for x in self.scale],
                "weights": {"warm": [round(float(x), 6) for x in self.warm],
                            "cold": [round(float(x), 6) for x in self.cold]},
                "meta": self.meta or {}}

    def with_dislike_rule(self) -> RankerModel:
        """The same model with the dislike rule: fitted dislike weights clipped at 0 (a dislike never lifts a
        paper), and ``dis_penalty`` weighted so that its penalty (cosine units) costs what the same drop in the
        similarity to the likes costs (the sum of the positive per-cosine weights of those features)."""
        idx = {f: k for k, f in enumerate(self.features)}
        warm = self.warm.copy()
        for name in ("dis_emb_max", "dis_lex_max"):
            if name in idx:
                warm[idx[name]] = min(0.0, float(warm[idx[name]]))
        if "dis_penalty" in idx:
            per_cos = sum(max(0.0, float(warm[idx[f]] / self.scale[idx[f]])) for f in LIKE_SIMILARITY if f in idx)
            warm[idx["dis_penalty"]] = -per_cos * float(self.scale[idx["dis_penalty"]])
        return RankerModel(self.features, self.mean, self.scale, warm, self.cold, self.version, self.meta)

    @classmethod
    def load(cls, path: Path | None = None) -> RankerModel:
        path = Path(path) if path is not None else MODEL_DIR / MODEL_FILE
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def combine(self, feats: dict[str, np.ndarray], cold: np.ndarray) -> np.ndarray:
        """(U, n) scores from the features (each (U, n)); ``cold[j]``: profile j has no likes."""
        shape = feats[self.features[0]].shape
        out = np.zeros(shape, np.float32)
        wu = np.where(cold[:, None], self.cold[None, :], self.warm[None, :]).astype(np.float32)  # (U, F)
        const = np.zeros(shape[0], np.float32)
        for k, name in enumerate(self.features):
            coef = wu[:, k] / self.scale[k]
            if not coef.any():
                continue
            out += coef[:, None] * feats[name]
            const -= coef * self.mean[k]
        out += const[:, None]
        return out


_shipped_lock = threading.Lock()
_shipped: dict[str, object] = {}


def shipped_model() -> RankerModel | None:
    """The shipped ranker (loaded once), None when its file is missing or unreadable (logged)."""
    with _shipped_lock:
        if "model" not in _shipped:
            try:
                _shipped["model"] = RankerModel.load()
            except (OSError, ValueError, KeyError) as exc:
                log.warning("learned ranker unavailable (%s): ranking with the similarity score", exc)
                _shipped["model"] = None
        model = _shipped["model"]
        return model if isinstance(model, RankerModel) else None


def shipped_background(dim: int) -> Background | None:
    """The background statistics shipped with the ranker (for stores too small to have their own), if their
    dimension matches."""
    with _shipped_lock:
        if "background" not in _shipped:
            try:
                with np.load(MODEL_DIR / BACKGROUND_FILE) as z:
                    _shipped["background"] = Background(z["emb_mean"].astype(np.float32),
                                                        z["emb_prec"].astype(np.float32))
            except (OSError, KeyError, ValueError):
                _shipped["background"] = None
        bg = _shipped["background"]
    return bg if isinstance(bg, Background) and bg.emb_mean.shape[0] == dim else None


def background_from(vectors: np.ndarray, dim: int, lex: sp.csr_matrix | None = None) -> Background | None:
    """The background of a store: its own sample of vectors when it has enough, else the shipped statistics,
    else whatever it has (None with fewer than two vectors); the tf-idf centroid from ``lex`` rows."""
    if len(vectors) >= MIN_STORE_BACKGROUND:
        return Background.fit(vectors, lex)
    shipped = shipped_background(dim)
    if shipped is not None:
        return shipped.with_lex(lex)
    if len(vectors) >= 2:
        return Background.fit(vectors, lex, shrink=0.5)
    return None


def background_sample(n_total: int, k: int = 3000, seed: int = 0) -> np.ndarray:
    """Row indices of a deterministic background sample of ``k`` out of ``n_total`` papers (sorted)."""
    if n_total <= k:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, size=k, replace=False))


@dataclass(frozen=True, eq=False)
class LearnedContext:
    """What the learned ranker needs beside the profiles and the candidates' vectors: the model, the
    background statistics, and the candidates' categories (built once from lists, primary first; None: unknown)."""

    model: RankerModel
    background: Background
    categories: CandidateCategories | None = None

    @classmethod
    def of(cls, model: RankerModel, background: Background,
           cand_categories: Sequence[Sequence[str]] | None = None) -> LearnedContext:
        return cls(model, background, None if cand_categories is None else CandidateCategories(cand_categories))

    def subset(self, rows: Sequence[int]) -> LearnedContext:
        """The same context for the candidates ``rows`` only."""
        return LearnedContext(self.model, self.background,
                              None if self.categories is None else self.categories.subset(rows))


def servable(profile: Profile, params: ScoringParams) -> bool:
    return params.method == "softmax" and params.lexical_weight > 0 and profile.positives_lex is not None


def learned_scores(b: Block, profiles: Sequence[Profile], live: np.ndarray, cand: np.ndarray,
                   cand_lex: sp.csr_matrix | None, ctx: LearnedContext,
                   allowed: Sequence[np.ndarray | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Learned scores of the servable profiles among ``live`` (indices into the block's ``profiles``; ``allowed``:
    their own candidate rows, aligned with ``live``): returns (positions in ``live`` served, their (k, n) scores).
    Profiles not served keep the kernel's score. A profile with only an interest is ranked by pseudo-relevance
    feedback (:func:`pseudo_relevance_scores`)."""
    ok = np.array([cand_lex is not None and b.lexical and servable(profiles[j], b.params)
                   for j in live.tolist()], bool)
    pos = np.flatnonzero(ok)
    if not len(pos) or cand_lex is None:
        return pos, np.zeros((0, len(cand)), np.float32)
    sub = live[pos]
    feats = block_features(b, profiles, sub, cand, cand_lex, ctx.background, ctx.categories)
    cold = np.array([not profiles[j].like_ids for j in sub.tolist()], bool)
    scores = ctx.model.combine(feats, cold)
    if cold.any():
        rows = np.flatnonzero(cold)
        scores[rows] = pseudo_relevance_scores(
            [profiles[j] for j in sub[rows].tolist()], feats["emb_max"][rows], cand, cand_lex, ctx, b.params,
            None if allowed is None else [allowed[i] for i in pos[rows].tolist()])
    return pos, scores


PSEUDO_LIKES = 5  # cold start: the interest's nearest candidates taken as likes


def pseudo_relevance_scores(profiles: Sequence[Profile], interest_cos: np.ndarray, cand: np.ndarray,
                            cand_lex: sp.csr_matrix, ctx: LearnedContext, params: ScoringParams,
                            allowed: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """Cold start by pseudo-relevance feedback: for each interest-only profile, its ``PSEUDO_LIKES`` candidates
    nearest the interest (MiniLM cosine ``interest_cos``, (k, n); among ``allowed`` rows) are taken as likes
    beside the interest and every candidate is ranked by the warm model; those papers stay first, in their
    order. Measured on the evaluation's cold-start queries (docs/recommender_eval.md)."""
    n = len(cand)
    pseudo: list[Profile] = []
    tops: list[np.ndarray] = []
    for k, p in enumerate(profiles):
        s = np.asarray(interest_cos[k], np.float64).copy()
        rows = None if allowed is None else allowed[k]
        if rows is not None:
            keep = np.full(n, -np.inf)
            keep[rows] = s[rows]
            s = keep
        top = np.argsort(-s, kind="stable")[:PSEUDO_LIKES]
        top = top[np.isfinite(s[top])]
        tops.append(top)
        lex_rows = [cand_lex[top]]
        if p.positives_lex is not None:
            lex_rows.append(p.positives_lex[-1:])  # the interest's row (an interest-only profile has just it)
        pseudo.append(Profile(like_ids=[f"#{t}" for t in top.tolist()], likes=cand[top], interest=p.interest,
                              interest_vec=p.interest_vec, positives_lex=sp.vstack(lex_rows).tocsr(),
                              like_categories=None if ctx.categories is None else
                              [ctx.categories.lists[t] for t in top.tolist()]))
    blocks = [q.condensed(params.max_positives) if q.like_ids else None for q in pseudo]
    b2 = score_block(pseudo, blocks, cand, cand_lex, params)
    live = np.array([k for k, q in enumerate(pseudo) if q.like_ids], dtype=np.int64)
    out = np.asarray(interest_cos, np.float32).copy()
    if len(live):
        f2 = block_features(b2, pseudo, live, cand, cand_lex, ctx.background, ctx.categories)
        out[live] = ctx.model.combine(f2, np.zeros(len(live), bool))
    for k, top in enumerate(tops):
        if len(top):
            out[k, top] = out[k].max() + 1 + (len(top) - np.arange(len(top))) / len(top)
    return out


def feature_matrix(profiles: Sequence[Profile], cand: np.ndarray, cand_lex: sp.csr_matrix,
                   params: ScoringParams, bg: Background,
                   cand_categories: Sequence[Sequence[str]] | CandidateCategories | None = None) -> np.ndarray:
    """(U, n, F) features of ``FEATURES`` for profiles that all have tf-idf rows (fitting and evaluation)."""
    blocks = [p.condensed(params.max_positives) for p in profiles]
    b = score_block(list(profiles), blocks, np.asarray(cand, np.float32), cand_lex, params)
    live = np.arange(len(profiles))
    cats = cand_categories if cand_categories is None or isinstance(cand_categories, CandidateCategories) \
        else CandidateCategories(cand_categories)
    f = block_features(b, profiles, live, np.asarray(cand, np.float32), cand_lex, bg, cats)
    return np.stack([np.asarray(f[name], np.float32) for name in FEATURES], axis=-1)


def score_rows(model: RankerModel, feats: np.ndarray, cold: bool = False) -> np.ndarray:
    """Scores from a stacked feature array (..., len(FEATURES)) in ``FEATURES`` order, for profiles that are all
    cold or all warm (fitting, evaluation): the same combination as :meth:`RankerModel.combine`."""
    idx = [FEATURES.index(f) for f in model.features]
    z = (np.asarray(feats, np.float32)[..., idx] - model.mean) / model.scale
    return np.asarray(z @ (model.cold if cold else model.warm), np.float32)
