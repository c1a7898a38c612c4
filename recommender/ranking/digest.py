"""Ranking a set of candidate papers for a profile, and which papers are a user's digest candidates for a day.

:func:`digest_candidates` applies the product's rules: the papers announced as new on that day (cross-lists
too if the user wants them; replacements never), restricted to the categories the user follows if any,
minus everything already delivered to or rated by the user. :func:`rank` scores candidates with
:mod:`recommender.ranking.profile`, drops those below the minimum score (a thin day sends fewer papers, not worse
ones) and keeps the top ``n``, each with the liked paper (or the interest) behind it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import scipy.sparse as sp

from recommender.ranking.profile import Profile, ScoringParams, score, why_line
from recommender.embedding.vectors import top_k

log = logging.getLogger(__name__)


class _DigestStore(Protocol):
    def announced_ids(self, day: str, types: Sequence[str] = ..., categories: Sequence[str] | None = ...
                      ) -> list[str]: ...
    def delivered_ids(self, user_id: int, announced: str | None = ...) -> set[str]: ...
    def liked_ids(self, user_id: int) -> list[str]: ...
    def disliked_ids(self, user_id: int) -> list[str]: ...


@dataclass
class Ranked:
    paper_id: str
    score: float
    nearest_id: str | None  # liked paper behind the score; None when it is the interest text
    nearest_cos: float
    why: str
    similarity: float | None = None  # the embedding-only score (cosine units; what min_score compares to)


def digest_candidates(store: _DigestStore, user_id: int, day: str, categories: Sequence[str] = (),
                      cross_lists: bool = True) -> list[str]:
    """Ids of the papers that may go into ``user_id``'s digest for announcement day ``day``."""
    types = ("new", "cross") if cross_lists else ("new",)
    ids = store.announced_ids(day, types, list(categories) or None)
    seen = store.delivered_ids(user_id) | set(store.liked_ids(user_id)) | set(store.disliked_ids(user_id))
    return [i for i in ids if i not in seen]


def rank(profile: Profile, ids: Sequence[str], vectors: np.ndarray, n: int = 10,
         min_score: float | None = None, exclude: set[str] = frozenset(),
         params: ScoringParams | None = None, lexical: "sp.csr_matrix | None" = None) -> list[Ranked]:
    """The top ``n`` of ``ids`` (rows of ``vectors``; ``lexical``: their tf-idf rows, optional) for ``profile``,
    best first; those whose embedding score is below ``min_score`` are dropped (a thin day sends fewer)."""
    ids = list(ids)
    if profile.empty or not ids or n <= 0:
        return []
    s = score(profile, vectors, params, lexical)
    values = s.score.copy()
    if min_score is not None:
        values[s.semantic < min_score] = -np.inf
    row_of = {pid: r for r, pid in enumerate(ids)}
    out: list[Ranked] = []
    for pid, value in top_k(values, ids, n, set(exclude), row_of):
        r = row_of[pid]
        label = s.labels[int(s.nearest[r])]
        cos = float(s.nearest_cos[r])
        out.append(Ranked(pid, float(value), label, cos, why_line(label, cos, profile.interest),
                          float(s.semantic[r])))
    return out


def rank_many(profiles: list[Profile], ids: Sequence[str], vectors: np.ndarray, n: int = 10,
              min_score: float | Sequence[float | None] | None = None, params: ScoringParams | None = None,
              lexical: "sp.csr_matrix | None" = None) -> list[list[Ranked]]:
    """:func:`rank` for many profiles over the same candidates (one day's papers for every user) at once.

    The threshold is applied to the ``n`` best only (with tf-idf in play, :func:`rank` may fill up from
    below where this returns fewer)."""
    from recommender.ranking.profile import score_many

    ids = list(ids)
    if not profiles or not ids:
        return [[] for _ in profiles]
    scores = score_many(profiles, vectors, params, candidates_lex=lexical)
    thresholds = list(min_score) if isinstance(min_score, (list, tuple)) else [min_score] * len(profiles)
    k = min(n, len(ids))
    out: list[list[Ranked]] = []
    best = np.argpartition(-scores, k - 1, axis=0)[:k] if k < len(ids) else np.tile(np.arange(len(ids))[:, None],
                                                                                  (1, len(profiles)))
    for j, prof in enumerate(profiles):
        if prof.empty or n <= 0:
            out.append([])
            continue
        rows = best[:, j]
        rows = rows[np.argsort(-scores[rows, j], kind="stable")]
        detail = score(prof, vectors[rows], params, lexical[rows] if lexical is not None else None)
        thr = thresholds[j]
        keep = np.arange(len(rows)) if thr is None else np.flatnonzero(detail.semantic >= thr)
        ranked = []
        for i in keep:
            r = rows[i]
            label = detail.labels[int(detail.nearest[i])]
            cos = float(detail.nearest_cos[i])
            ranked.append(Ranked(ids[r], float(scores[r, j]), label, cos, why_line(label, cos, prof.interest),
                                 float(detail.semantic[i])))
        out.append(ranked)
    return out
