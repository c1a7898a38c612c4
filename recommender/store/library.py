"""SQL for matching references by title: the stored papers' normalised titles, exact look-up and a strict fuzzy one.

``title_keys`` holds each paper's title key (:func:`normalise_title`: LaTeX braces and commands, accents, case
and punctuation gone) with the content hash it was made from, and ``title_words`` (FTS5, rowid = the paper's
rowid) the same keys for full-text candidates. :meth:`LibraryQueries.match_titles` keys what is new or changed
first (papers are never keyed on the ingestion path; the first import after a big harvest pays once), then
matches each title exactly by key, else takes the FTS5 best candidates and accepts the closest only above a
strict similarity (:data:`FUZZY_CUTOFF` of difflib's ratio on keys, titles of at least :data:`FUZZY_MIN_CHARS`).
"""
from __future__ import annotations

import difflib
import re
import sqlite3
import unicodedata
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

FUZZY_CUTOFF = 0.95  # "attention is not all you need" vs "attention is all you need" is 0.93: refused
FUZZY_MIN_CHARS = 20
FTS_CANDIDATES = 8
KEY_BATCH = 5000
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
    exact: bool  # equal keys; else a close match above FUZZY_CUTOFF
    similarity: float


class LibraryQueries:
    """Mixin of :class:`recommender.store.Store` for title matching."""

    if TYPE_CHECKING:  # provided by Store
        @property
        def conn(self) -> sqlite3.Connection: ...

        def transaction(self) -> AbstractContextManager[None]: ...

    def sync_title_keys(self) -> int:
        """Key the titles of papers added or changed since the last call; returns how many were keyed."""
        done = 0
        while True:
            rows = self.conn.execute(
                "SELECT p.rowid, p.id, p.title, p.content_hash FROM papers p LEFT JOIN title_keys k "
                "ON k.paper_id = p.id WHERE k.paper_id IS NULL OR k.content_hash != p.content_hash LIMIT ?",
                (KEY_BATCH,)).fetchall()
            if not rows:
                return done
            keyed = [(r[0], r[1], normalise_title(r[2]), r[3]) for r in rows]
            with self.transaction():
                self.conn.executemany("DELETE FROM title_words WHERE rowid = ?", [(k[0],) for k in keyed])
                self.conn.executemany("INSERT INTO title_words (rowid, title_key) VALUES (?, ?)",
                                      [(k[0], k[2]) for k in keyed])
                self.conn.executemany(
                    "INSERT INTO title_keys (paper_id, title_key, content_hash) VALUES (?, ?, ?) "
                    "ON CONFLICT(paper_id) DO UPDATE SET title_key = excluded.title_key, "
                    "content_hash = excluded.content_hash", [(k[1], k[2], k[3]) for k in keyed])
            done += len(keyed)

    def match_titles(self, titles: Sequence[str]) -> dict[str, TitleMatch]:
        """Each title's stored paper (keyed by the title as given), exact after normalisation or a close match;
        titles without a match are left out."""
        self.sync_title_keys()
        out: dict[str, TitleMatch] = {}
        for title in dict.fromkeys(titles):
            key = normalise_title(title)
            if not key:
                continue
            row = self.conn.execute("SELECT paper_id FROM title_keys WHERE title_key = ? ORDER BY paper_id LIMIT 1",
                                    (key,)).fetchone()
            if row is not None:
                out[title] = TitleMatch(row[0], True, 1.0)
                continue
            if len(key) < FUZZY_MIN_CHARS:
                continue
            best = self._closest(key)
            if best is not None:
                out[title] = best
        return out

    def _closest(self, key: str) -> TitleMatch | None:
        words = [w for w in key.split() if len(w) > 2] or key.split()
        query = " OR ".join(f'"{w}"' for w in dict.fromkeys(words))
        rows = self.conn.execute(
            "SELECT k.paper_id, k.title_key FROM (SELECT rowid FROM title_words WHERE title_words MATCH ? "
            "ORDER BY rank LIMIT ?) f JOIN papers p ON p.rowid = f.rowid JOIN title_keys k ON k.paper_id = p.id",
            (query, FTS_CANDIDATES)).fetchall()
        best: TitleMatch | None = None
        for pid, candidate in rows:
            ratio = difflib.SequenceMatcher(None, key, candidate, autojunk=False).ratio()
            if ratio >= FUZZY_CUTOFF and (best is None or ratio > best.similarity):
                best = TitleMatch(pid, False, ratio)
        return best
