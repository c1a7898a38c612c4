"""Learn word bigrams ("phrases") from the training corpus, word2phrase style.

score(a, b) = (count(ab) - min_count) * N / (count(a) * count(b)); the ``top_k`` bigrams scoring above
``threshold`` become single tokens ``a_b`` (see :func:`recommender.classification.textprep.merge_phrases`). Markers and
``-EQN-`` never join a phrase; pure numbers neither.
"""
from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Iterable

from tqdm import tqdm

from recommender.classification.textprep import MARKERS

log = logging.getLogger(__name__)


def _ok(tok: str) -> bool:
    return tok not in MARKERS and not tok.isdigit() and len(tok) > 1


def learn_phrases(token_lists: Iterable[list[str]], min_count: int, top_k: int, threshold: float,
                  total: int | None = None) -> list[str]:
    uni: Counter[str] = Counter()
    bi: Counter[tuple[str, str]] = Counter()
    for toks in tqdm(token_lists, total=total, desc="counting bigrams", unit=" papers"):
        uni.update(toks)
        bi.update(itertools.pairwise(toks))
    n = sum(uni.values())
    scored = []
    for (a, b), c in bi.items():
        if c < min_count or not (_ok(a) and _ok(b)):
            continue
        s = (c - min_count) * n / (uni[a] * uni[b])
        if s > threshold:
            scored.append((s * (c ** 0.5), f"{a}_{b}"))  # favour frequent phrases among the high-PMI ones
    scored.sort(reverse=True)
    phrases = [p for _, p in scored[:top_k]]
    log.info("learned %d phrases (of %d candidates)", len(phrases), len(scored))
    return phrases
