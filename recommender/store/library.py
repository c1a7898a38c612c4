"""SQL for matching references by title against the stored papers: exact after normalisation, or a strict close match.

Candidates come from the full-text index of titles and abstracts that keyword alerts keep in sync (``papers_fts``,
FTS5 with diacritics removed; see ``recommender.store.follows``), searched in its title column only, so nothing
extra is stored or kept up to date and a look-up costs the same in a demo store and in all of arXiv. A title
matches exactly when a candidate's :func:`normalise_title` key (LaTeX braces and commands, accents, case and
punctuation gone) equals its own: the candidates are the papers whose titles contain all its words. Failing
that, the best candidates for any of its words are compared by difflib's ratio of keys, and the closest is
accepted only at :data:`FUZZY_CUTOFF` or above, for titles of at least :data:`FUZZY_MIN_CHARS`.
"""
from __future__ import annotations

import difflib
import re
import sqlite3
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

FUZZY_CUTOFF = 0.95  # "attention is not all you need" vs "attention is all you need" is 0.93: refused
FUZZY_MIN_CHARS = 20
EXACT_CANDIDATES = 20
FUZZY_CANDIDATES = 8
MAX_QUERY_WORDS = 40
_LATEX_CMD = re.compile(r"\\[A-Za-z]+\*?|\\.")
_ACCENTS = "\"'`^~=."  # \"o, \'e, ...: the accent goes, the letter stays


def normalise_title(title: str) -> str:
    """The matching key of a title: LaTeX braces and commands gone, accents stripped, case folded, punctuation
    and runs of spaces as one space (``"{BERT}: Pre-training of Deep"`` -> ``"bert pre training of deep"``)."""
    t = _LATEX_CMD.sub(lambda m: "" if m[0][1:2].isalpha() or m[0][1:2] in _ACCENTS else m[0][1:], title or "")
    t = unicodedata.normalize("NFKD", t.replace("{", "").replace("}", ""))
    t = "".join(ch for ch in t if not unicodedata.combining(ch)).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", t).split())


@dataclass(frozen=True)
class TitleMatch:
    paper_id: str
    exact: bool  # equal keys; else a close match at FUZZY_CUTOFF or above
    similarity: float


class LibraryQueries:
    """Mixin of :class:`recommender.store.Store` for title matching."""

    if TYPE_CHECKING:  # provided by Store
        @property
        def conn(self) -> sqlite3.Connection: ...

    def match_titles(self, titles: Sequence[str]) -> dict[str, TitleMatch]:
        """Each title's stored paper (keyed by the title as given), exact after normalisation or a close match;
        titles without a match are left out."""
        out: dict[str, TitleMatch] = {}
        for title in dict.fromkeys(titles):
            key = normalise_title(title)
            if not key:
                continue
            words = list(dict.fromkeys(key.split()))[:MAX_QUERY_WORDS]
            exact = [pid for pid, t in self._title_candidates(" ".join(f'"{w}"' for w in words), EXACT_CANDIDATES)
                     if normalise_title(t) == key]
            if exact:
                out[title] = TitleMatch(min(exact), True, 1.0)
            elif len(key) >= FUZZY_MIN_CHARS and (best := self._closest(key, words)) is not None:
                out[title] = best
        return out

    def _title_candidates(self, query: str, limit: int) -> list[tuple[str, str]]:
        """(id, title) of the best ``limit`` papers for an FTS5 ``query`` over titles."""
        return [(r[0], r[1]) for r in self.conn.execute(
            "SELECT p.id, p.title FROM (SELECT rowid, rank FROM papers_fts WHERE papers_fts MATCH ? "
            "ORDER BY rank LIMIT ?) f JOIN papers p ON p.rowid = f.rowid ORDER BY f.rank",
            (f"title : ({query})", limit))]

    def _closest(self, key: str, words: list[str]) -> TitleMatch | None:
        telling = [w for w in words if len(w) > 2] or words
        best: TitleMatch | None = None
        for pid, title in self._title_candidates(" OR ".join(f'"{w}"' for w in telling), FUZZY_CANDIDATES):
            ratio = difflib.SequenceMatcher(None, key, normalise_title(title), autojunk=False).ratio()
            if ratio >= FUZZY_CUTOFF and (best is None or ratio > best.similarity):
                best = TitleMatch(pid, False, ratio)
        return best
