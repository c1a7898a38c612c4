"""Ranking a set of candidate papers for a profile, and which papers are a user's digest candidates for a day.

:func:`digest_candidates` applies the product's rules: the papers announced as new on that day (cross-lists
too if the user wants them; replacements never), restricted to the categories the user follows if any,
minus everything already delivered to or rated by the user. :func:`rank_many` scores candidates for
many users at once with :mod:`recommender.ranking.profile`'s one kernel, drops those below each user's minimum
score (a thin day sends fewer papers, not worse ones) and keeps each user's top ``n``, each with the liked paper
(or the interest) behind it; :func:`rank` is the same for one profile.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from recommender.ranking.profile import (
    Profile,
    ScoringParams,
    chunks,
    score_block,
    shared_likes,
    why_line,
)

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
         min_score: float | None = None, exclude: AbstractSet[str] = frozenset(),
         params: ScoringParams | None = None, lexical: sp.csr_matrix | None = None) -> list[Ranked]:
    """The top ``n`` of ``ids`` (rows of ``vectors``; ``lexical``: their tf-idf rows, optional) for ``profile``,
    best first, among those whose embedding score reaches ``min_score`` (a thin day sends fewer)."""
    ids = list(ids)
    if exclude:
        keep = [r for r, pid in enumerate(ids) if pid not in exclude]
        if len(keep) < len(ids):
            ids = [ids[r] for r in keep]
            vectors = np.asarray(vectors)[keep]
            lexical = lexical[keep] if lexical is not None else None
    return rank_many([profile], ids, vectors, n, min_score, params, lexical)[0]


def rank_many(profiles: list[Profile], ids: Sequence[str], vectors: np.ndarray, n: int = 10,
              min_score: float | Sequence[float | None] | None = None, params: ScoringParams | None = None,
              lexical: sp.csr_matrix | None = None, max_columns: int = 8192) -> list[list[Ranked]]:
    """:func:`rank` for many profiles over the same candidates (one day's papers for every user) at once.

    Profiles go through the scoring kernel in blocks of at most ``max_columns`` stacked positives; in each
    block the threshold (one for all, or one per profile) removes candidates first, then each profile keeps
    its ``n`` best (argpartition per column), so the result is exactly :func:`rank`'s, profile by profile."""
    params = params or ScoringParams()
    ids = list(ids)
    out: list[list[Ranked]] = [[] for _ in profiles]
    if not profiles or not ids or n <= 0:
        return out
    cand = np.asarray(vectors, dtype=np.float32)
    thresholds = list(min_score) if isinstance(min_score, (list, tuple)) else [min_score] * len(profiles)
    blocks = [p.condensed(params.max_positives) for p in profiles]
    shared = shared_likes(blocks, cand, lexical, params)
    k = min(n, len(ids))
    for start, stop in chunks(blocks, max_columns):
        if all(b is None for b in blocks[start:stop]):
            continue
        b = score_block(profiles[start:stop], blocks[start:stop], cand, lexical, params,
                        shared.view(start, stop) if shared is not None else None)
        values = b.score
        for jj, thr in enumerate(thresholds[start:stop]):
            if thr is not None:
                values[b.semantic[:, jj] < thr, jj] = -np.inf
        if k < len(ids):
            top = np.argpartition(-values, k - 1, axis=0)[:k]
        else:
            top = np.broadcast_to(np.arange(len(ids))[:, None], (len(ids), stop - start))
        for jj in range(stop - start):
            j = start + jj
            if blocks[j] is None:
                continue
            rows = top[:, jj]
            v = values[rows, jj]
            order = np.lexsort((rows, -v))
            rows = rows[order][np.isfinite(v[order])]
            nearest, cos = b.nearest(jj, rows)
            labels = b.labels[jj]
            interest = profiles[j].interest
            out[j] = [Ranked(ids[r], float(values[r, jj]), labels[int(i)], float(c),
                             why_line(labels[int(i)], float(c), interest), float(b.semantic[r, jj]))
                      for r, i, c in zip(rows.tolist(), nearest.tolist(), cos.tolist())]
    return out
