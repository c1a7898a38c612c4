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
import os
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from recommender.ranking.learned import LearnedContext, learned_scores
from recommender.ranking.profile import (
    Profile,
    ScoringParams,
    chunks,
    score_block,
    shared_likes,
    why_line,
)

log = logging.getLogger(__name__)
WORKERS = min(2, os.cpu_count() or 1)  # blocks of profiles scored at once
WIDEN = 4  # candidates per profile whose embedding-only score is pooled to apply the threshold: WIDEN * n


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
         params: ScoringParams | None = None, lexical: sp.csr_matrix | None = None,
         learned: LearnedContext | None = None) -> list[Ranked]:
    """The top ``n`` of ``ids`` (rows of ``vectors``; ``lexical``: their tf-idf rows, optional) for ``profile``,
    best first, among those whose embedding score reaches ``min_score`` (a thin day sends fewer)."""
    ids = list(ids)
    if exclude:
        keep = [r for r, pid in enumerate(ids) if pid not in exclude]
        if len(keep) < len(ids):
            ids = [ids[r] for r in keep]
            vectors = np.asarray(vectors)[keep]
            lexical = lexical[keep] if lexical is not None else None
            learned = learned.subset(keep) if learned is not None else None
    return rank_many([profile], ids, vectors, n, min_score, params, lexical, learned=learned)[0]


def rank_many(profiles: list[Profile], ids: Sequence[str], vectors: np.ndarray, n: int | Sequence[int] = 10,
              min_score: float | Sequence[float | None] | None = None, params: ScoringParams | None = None,
              lexical: sp.csr_matrix | None = None, max_columns: int = 8192,
              allowed: Sequence[np.ndarray | None] | None = None,
              learned: LearnedContext | None = None) -> list[list[Ranked]]:
    """:func:`rank` for many profiles over the same candidates (one day's papers for every user) at once.

    Profiles go through the scoring kernel in blocks of at most ``max_columns`` stacked positives; in each
    block the threshold (one for all, or one per profile) removes candidates first, then each profile keeps
    its ``n`` best (argpartition per column), so the result is exactly :func:`rank`'s, profile by profile.
    ``n`` and ``min_score`` may be one per profile; ``allowed[j]`` (row indices into ``ids``, None: all) limits
    profile j to its own candidates among the shared ones (a user's categories, minus what they had).
    ``learned``: rank by the learned ranker (:mod:`recommender.ranking.learned`) instead of the similarity score
    (the threshold still compares the embedding-only similarity)."""
    params = params or ScoringParams()
    ids = list(ids)
    out: list[list[Ranked]] = [[] for _ in profiles]
    sizes = list(n) if isinstance(n, Sequence) else [int(n)] * len(profiles)
    if not profiles or not ids or max(sizes, default=0) <= 0:
        return out
    cand = np.asarray(vectors, dtype=np.float32)
    thresholds = list(min_score) if isinstance(min_score, (list, tuple)) else [min_score] * len(profiles)

    def wanted(j: int) -> bool:  # a profile with room in its digest and candidates of its own
        rows = None if allowed is None else allowed[j]
        return sizes[j] > 0 and (rows is None or len(rows) > 0)

    blocks = [p.condensed(params.max_positives) if wanted(j) else None for j, p in enumerate(profiles)]
    shared = shared_likes(blocks, cand, lexical, params)
    k = min(max(sizes), len(ids))
    wide = min(len(ids), WIDEN * k)
    def one_chunk(start: int, stop: int) -> None:
        live = np.array([jj for jj in range(stop - start) if blocks[start + jj] is not None], dtype=np.int64)
        if not len(live):
            return
        b = score_block(profiles[start:stop], blocks[start:stop], cand, lexical, params,
                        shared.view(start, stop) if shared is not None else None)
        values = b.score[live]  # (live profiles, candidates): the ranking score
        if learned is not None:
            served, learned_values = learned_scores(
                b, profiles[start:stop], live, cand, lexical, learned,
                None if allowed is None else [allowed[start + jj] for jj in live.tolist()])
            values[served] = learned_values
        if allowed is not None:
            for i, jj in enumerate(live.tolist()):
                mask = allowed[start + jj]
                if mask is not None:
                    keep = values[i, mask]
                    values[i] = -np.inf
                    values[i, mask] = keep
        thr = np.array([np.nan if t is None else t for t in (thresholds[start + jj] for jj in live)], np.float32)
        # the threshold compares the embedding-only score: pooled for each profile's `wide` best by ranking
        # score; when k of those pass, they hold the k best passing ones; else for every candidate
        top = np.argpartition(-values, wide - 1, axis=1)[:, :wide] if wide < len(ids) else \
            np.broadcast_to(np.arange(len(ids)), (len(live), len(ids)))
        sem = b.semantic_at(live, top)
        ok = (np.isnan(thr)[:, None] | (sem >= thr[:, None])) & np.isfinite(np.take_along_axis(values, top, axis=1))
        want = np.array([sizes[start + jj] for jj in live.tolist()])
        short = np.flatnonzero((ok.sum(axis=1) < want) & (np.isfinite(values).sum(axis=1) > wide))
        if len(short):
            full = b.semantic(live[short])
            for x, i in enumerate(short.tolist()):
                passing = (full[x] >= thr[i]) & np.isfinite(values[i])
                top_i = np.argsort(-np.where(passing, values[i], -np.inf), kind="stable")[:wide]
                top[i] = top_i
                sem[i] = full[x, top_i]
                ok[i] = passing[top_i]
        for i, jj in enumerate(live.tolist()):
            rows = top[i][ok[i]]
            v = values[i, rows]
            order = np.lexsort((rows, -v))[:sizes[start + jj]]
            s_i = sem[i][ok[i]][order]
            rows = rows[order]
            nearest, cos = b.nearest(jj, rows)
            labels = b.labels[jj]
            interest = profiles[start + jj].interest
            out[start + jj] = [
                Ranked(ids[r], float(values[i, r]), labels[x], c, why_line(labels[x], c, interest), float(sv))
                for r, x, c, sv in zip(rows.tolist(), nearest.tolist(), cos.tolist(), s_i.tolist(), strict=True)]

    spans = chunks(blocks, max_columns)
    workers = min(WORKERS, len(spans))
    if workers <= 1:
        for start, stop in spans:
            one_chunk(start, stop)
    else:  # numpy, BLAS and scipy's sparse products release the GIL: two blocks at once use two cores
        with ThreadPoolExecutor(workers, thread_name_prefix="rank") as pool:
            for _ in pool.map(lambda span: one_chunk(*span), spans):
                pass
    return out
