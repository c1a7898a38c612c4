"""Which papers to ask a user about: the ones the ranker is least sure of ("quick checks").

A rating teaches the ranker most where it hesitates: a paper whose score sits right at the user's threshold
(or at the edge of what the digest shows) could go either way, so a like or dislike there moves the boundary,
while a rating of a paper far above or below it confirms what the ranker already believed. :func:`borderline`
picks the ``k`` candidates whose scores are nearest a threshold, skipping those the caller excludes (papers already
sent or rated). The evaluation (``training/recommender_eval.py``, quick checks) measures what such ratings are worth
against the same number of ratings on the top papers.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def borderline(scores: Sequence[float] | np.ndarray, threshold: float, k: int = 2,
               exclude: Sequence[int] | np.ndarray | None = None) -> list[int]:
    """Indices of the ``k`` scores nearest ``threshold`` (nearest first; ties: the higher score, then the lower
    index), never one of ``exclude`` (indices) and never a non-finite score. Fewer when fewer are eligible."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    if k <= 0 or not len(s):
        return []
    ok = np.isfinite(s)
    if exclude is not None and len(exclude):
        ok[np.asarray(exclude, dtype=np.int64)] = False
    idx = np.flatnonzero(ok)
    if not len(idx):
        return []
    dist = np.abs(s[idx] - float(threshold))
    order = np.lexsort((idx, -s[idx], dist))[:k]
    return [int(i) for i in idx[order]]
