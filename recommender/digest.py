"""Ranking a set of candidate papers for a profile, and which papers are a user's digest candidates for a day.

:func:`digest_candidates` applies the product's rules: the papers announced as new on that day (cross-lists
too if the user wants them; replacements never), restricted to the categories the user follows if any,
minus everything already delivered to or rated by the user. :func:`rank` scores candidates with
:mod:`recommender.profile`, drops those below the minimum score (a thin day sends fewer papers, not worse
ones) and keeps the top ``n``, each with the liked paper (or the interest) behind it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from .profile import Profile, ScoringParams, score, why_line
from .vectors import top_k

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


def digest_candidates(store: _DigestStore, user_id: int, day: str, categories: Sequence[str] = (),
                      cross_lists: bool = True) -> list[str]:
    """Ids of the papers that may go into ``user_id``'s digest for announcement day ``day``."""
    types = ("new", "cross") if cross_lists else ("new",)
    ids = store.announced_ids(day, types, list(categories) or None)
    seen = store.delivered_ids(user_id) | set(store.liked_ids(user_id)) | set(store.disliked_ids(user_id))
    return [i for i in ids if i not in seen]


def rank(profile: Profile, ids: Sequence[str], vectors: np.ndarray, n: int = 10,
         min_score: float | None = None, exclude: set[str] = frozenset(),
         params: ScoringParams | None = None) -> list[Ranked]:
    """The top ``n`` of ``ids`` (rows of ``vectors``) for ``profile``, best first, at or above ``min_score``."""
    ids = list(ids)
    if profile.empty or not ids or n <= 0:
        return []
    s = score(profile, vectors, params)
    values = s.score.copy()
    if min_score is not None:
        values[values < min_score] = -np.inf
    row_of = {pid: r for r, pid in enumerate(ids)}
    out: list[Ranked] = []
    for pid, value in top_k(values, ids, n, set(exclude), row_of):
        r = row_of[pid]
        label = s.labels[int(s.nearest[r])]
        cos = float(s.nearest_cos[r])
        out.append(Ranked(pid, float(value), label, cos, why_line(label, cos, profile.interest)))
    return out
