"""SQL for what a user follows beyond categories: authors (matched by name, robustly) and keyword alerts.

Author names are matched on a folded key, never on the raw string: accents (Unicode or LaTeX, ``Schr\\"odinger``),
case and punctuation are folded away, ``"Bonanno, Claudio"`` is read as ``Claudio Bonanno``, particles
(``van``, ``de``) and suffixes (``Jr``) are ignored, and an initial matches any given name with that first letter
(``C. Bonanno`` ~ ``Claudio Bonanno``). :func:`split_name` gives a name's (given names, surname) key and
:func:`compatible` compares two keys. ``author_keys`` holds the key of every stored author, filled from
``authors`` on demand (:meth:`FollowQueries.sync_author_keys`; author ids only grow, so a high-water mark finds
the new ones). A follow stores the key of the author chosen; a paper is by a followed author when one of its
authors has the same surname and a compatible given name.

Keyword alerts are phrases matched with SQLite FTS5 over titles and abstracts (``papers_fts``, an external-content
index kept in sync with ``papers`` by triggers): case-insensitive, accent-insensitive, whole words, and tolerant of
hyphenation, LaTeX markup and line breaks (``cathetus-rule``, ``{\\em cathetus} rule``), because both the phrase and
the text are cut into the same words. A phrase is stored as its folded words only (:func:`alert_words`), and the
FTS query is always one quoted phrase of those words, so quotes, ``NEAR``, ``*``, ``OR`` or column filters typed by a
user are words to match, never query syntax.
"""
from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

MAX_ALERTS = 20  # alerts a user may have
MAX_AUTHOR_FOLLOWS = 100  # authors a user may follow
MAX_ALERT_WORDS = 8
MAX_ALERT_CHARS = 100
KEY_SYNC_CHUNK = 50_000

PARTICLES = frozenset({"van", "von", "der", "den", "de", "del", "della", "di", "da", "du", "la", "le", "dos", "das",
                       "ter", "ten", "bin", "ibn", "al", "el", "y"})
SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv"})
# LaTeX accents: \"o, \'{e}, {\'e}, \c{c}, \v s ...
_LATEX_ACCENT = re.compile(r"\\[`'^\"~=.uvHckbdr]\s*\{?\s*([A-Za-z])\s*\}?")
_LATEX_LETTERS = {r"\ss": "ss", r"\o": "o", r"\O": "o", r"\ae": "ae", r"\AE": "ae", r"\oe": "oe", r"\l": "l",
                  r"\L": "l", r"\aa": "a", r"\AA": "a", r"\i": "i"}
_LATEX_LETTER = re.compile(r"(" + "|".join(re.escape(m) for m in sorted(_LATEX_LETTERS, key=len, reverse=True))
                           + r")(?![A-Za-z])")
_WORDS = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """``text`` lower-cased with accents (Unicode or LaTeX) removed; other characters kept."""
    if "\\" in text:
        text = _LATEX_ACCENT.sub(r"\1", text)
        text = _LATEX_LETTER.sub(lambda m: _LATEX_LETTERS[m[1]], text)
    if text.isascii():
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def split_name(name: str) -> tuple[tuple[str, ...], str]:
    """(given names and initials, surname) of an author name, folded: ``"Bonanno, Claudio"``, ``"Claudio
    Bonanno"`` and ``"CLAUDIO BONANNO"`` all give ``(("claudio",), "bonanno")``, ``"C. Bonanno"`` gives
    ``(("c",), "bonanno")``. The surname is the last word of the family name; ("", "") for a name without letters."""
    name = fold(name)
    if "," in name:
        family, _, given = name.partition(",")
        given_words = [w for w in _WORDS.findall(given) if w not in SUFFIXES]
        family_words = _WORDS.findall(family)
    else:
        words = _WORDS.findall(name)
        while len(words) > 1 and words[-1] in SUFFIXES:
            words.pop()
        family_words, given_words = words[-1:], words[:-1]
    family_words = [w for w in family_words if w not in SUFFIXES]
    if not family_words:
        return (), ""
    given_words = [w for w in given_words if w not in PARTICLES]
    return tuple(given_words), family_words[-1]


def display_name(name: str) -> str:
    """A name as shown: ``"Bonanno, Claudio"`` becomes ``"Claudio Bonanno"``; spaces collapsed."""
    family, comma, given = name.partition(",")
    return " ".join((f"{given} {family}" if comma and given.strip() else name).split())


def compatible(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether two folded given-name sequences can name the same person: word by word (as far as the shorter
    one goes) equal, or an initial and a name starting with it; a missing given name fits any."""
    for x, y in zip(a, b, strict=False):
        if x == y:
            continue
        if (len(x) == 1 and y.startswith(x)) or (len(y) == 1 and x.startswith(y)):
            continue
        return False
    return True


def alert_words(phrase: str) -> list[str]:
    """The folded words of an alert phrase, as FTS5's tokenizer cuts them (letters and digits)."""
    return _WORDS.findall(fold(phrase))


def fts_phrase(words: Sequence[str]) -> str:
    """The FTS5 query matching ``words`` as one phrase. Words hold only letters and digits (no quote can close
    the phrase), so operators typed by a user (NEAR, OR, *, ^, column:) are matched as words, never obeyed."""
    safe = [w for w in words if _WORDS.fullmatch(w)]
    return '"' + " ".join(safe) + '"'


@dataclass(frozen=True)
class KnownAuthor:
    """An author of stored papers: one name string (``authors`` row) and how many stored papers carry it."""

    id: int
    name: str
    papers: int


@dataclass(frozen=True)
class FollowedAuthor:
    name: str
    given: tuple[str, ...]
    surname: str


@dataclass(frozen=True)
class Alert:
    phrase: str  # as typed (cleaned), for display
    words: tuple[str, ...]  # folded, what is matched


class LimitReached(ValueError):
    """A user has as many follows or alerts as are kept."""


def _marks(n: int) -> str:
    return ",".join("?" * n)


class FollowQueries:
    """Mixin of :class:`recommender.store.Store` for author follows and keyword alerts. Expects ``self.conn``."""

    if TYPE_CHECKING:  # provided by Store
        @property
        def conn(self) -> sqlite3.Connection: ...

        def transaction(self) -> AbstractContextManager[None]: ...

    # -- author keys ------------------------------------------------------------------------------------
    def sync_author_keys(self) -> int:
        """Compute the matching key of every author that lacks one; returns how many were added."""
        added = 0
        while True:
            last = self.conn.execute("SELECT coalesce(max(author_id), 0) FROM author_keys").fetchone()[0]
            rows = self.conn.execute("SELECT id, name FROM authors WHERE id > ? ORDER BY id LIMIT ?",
                                     (last, KEY_SYNC_CHUNK)).fetchall()
            if not rows:
                return added
            keys = []
            for author_id, name in rows:
                given, surname = split_name(name)
                keys.append((author_id, surname, " ".join(given)))
            with self.transaction():
                self.conn.executemany(
                    "INSERT OR IGNORE INTO author_keys (author_id, surname, given) VALUES (?, ?, ?)", keys)
            added += len(keys)

    def authors_by_surname(self, surnames: Iterable[str]) -> list[tuple[KnownAuthor, tuple[str, ...], str]]:
        """Known authors with one of these folded surnames: (author, given, surname), most papers first.
        Call :meth:`sync_author_keys` first so recently stored authors are included."""
        names = sorted(set(surnames))
        if not names:
            return []
        rows = self.conn.execute(
            f"SELECT k.author_id, a.name, k.surname, k.given, "
            f"(SELECT count(*) FROM paper_authors pa WHERE pa.author_id = k.author_id) AS n "
            f"FROM author_keys k JOIN authors a ON a.id = k.author_id WHERE k.surname IN ({_marks(len(names))}) "
            f"ORDER BY n DESC, a.name LIMIT 500", names).fetchall()
        return [(KnownAuthor(r[0], r[1], r[4]), tuple(r[3].split()), r[2]) for r in rows]

    def surnames_near(self, surname: str, limit: int = 2000) -> list[str]:
        """Known folded surnames sharing the first two letters of ``surname`` (for "did you mean")."""
        if not surname:
            return []
        prefix = surname[:2]
        return [r[0] for r in self.conn.execute(
            "SELECT DISTINCT surname FROM author_keys WHERE surname >= ? AND surname < ? LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit))]

    def author(self, author_id: int) -> KnownAuthor | None:
        row = self.conn.execute(
            "SELECT a.id, a.name, (SELECT count(*) FROM paper_authors pa WHERE pa.author_id = a.id) "
            "FROM authors a WHERE a.id = ?", (author_id,)).fetchone()
        return KnownAuthor(row[0], row[1], row[2]) if row else None

    def recurring_authors(self, paper_ids: Sequence[str], min_papers: int = 2,
                          limit: int = 5) -> list[KnownAuthor]:
        """Authors on at least ``min_papers`` of ``paper_ids`` (e.g. a user's likes), most frequent first."""
        ids = list(dict.fromkeys(paper_ids))[:2000]
        if not ids:
            return []
        rows = self.conn.execute(
            f"SELECT a.id, a.name, count(DISTINCT pa.paper_id) AS n FROM paper_authors pa "
            f"JOIN authors a ON a.id = pa.author_id WHERE pa.paper_id IN ({_marks(len(ids))}) "
            f"GROUP BY a.id HAVING n >= ? ORDER BY n DESC, a.name LIMIT ?", [*ids, min_papers, limit]).fetchall()
        return [KnownAuthor(r[0], r[1], r[2]) for r in rows]

    # -- author follows ---------------------------------------------------------------------------------
    def follow_author(self, user_id: int, name: str) -> bool:
        """Follow the author ``name`` (as shown); returns False if the user followed that key already.
        Raises ValueError for a name without letters, :class:`LimitReached` past :data:`MAX_AUTHOR_FOLLOWS`."""
        given, surname = split_name(name)
        if not any(ch.isalpha() for ch in surname):
            raise ValueError("an author name needs letters")
        with self.transaction():
            have = self.conn.execute("SELECT count(*) FROM author_follows WHERE user_id = ?", (user_id,)).fetchone()[0]
            exists = self.conn.execute(
                "SELECT 1 FROM author_follows WHERE user_id = ? AND surname = ? AND given = ?",
                (user_id, surname, " ".join(given))).fetchone()
            if exists:
                return False
            if have >= MAX_AUTHOR_FOLLOWS:
                raise LimitReached(f"at most {MAX_AUTHOR_FOLLOWS} authors")
            self.conn.execute("INSERT INTO author_follows (user_id, surname, given, name) VALUES (?, ?, ?, ?)",
                              (user_id, surname, " ".join(given), display_name(name)))
        return True

    def followed_authors(self, user_id: int) -> list[FollowedAuthor]:
        return [FollowedAuthor(r[0], tuple(r[1].split()), r[2]) for r in self.conn.execute(
            "SELECT name, given, surname FROM author_follows WHERE user_id = ? ORDER BY surname, given", (user_id,))]

    def unfollow_authors(self, user_id: int, name: str) -> list[str]:
        """Stop following the followed authors that ``name`` can name (same surname, compatible given names);
        returns their names."""
        given, surname = split_name(name)
        gone = [f for f in self.followed_authors(user_id) if f.surname == surname and compatible(given, f.given)]
        if gone:
            with self.transaction():
                self.conn.executemany("DELETE FROM author_follows WHERE user_id = ? AND surname = ? AND given = ?",
                                      [(user_id, f.surname, " ".join(f.given)) for f in gone])
        return [f.name for f in gone]

    def author_follows_of(self, user_ids: Sequence[int]) -> dict[int, list[FollowedAuthor]]:
        """user id -> followed authors, for many users at once (users without follows are absent)."""
        out: dict[int, list[FollowedAuthor]] = {}
        ids = list(dict.fromkeys(user_ids))
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            for uid, name, given, surname in self.conn.execute(
                    f"SELECT user_id, name, given, surname FROM author_follows WHERE user_id IN ({_marks(len(chunk))}) "
                    f"ORDER BY user_id, surname, given", chunk):
                out.setdefault(uid, []).append(FollowedAuthor(name, tuple(given.split()), surname))
        return out

    def author_names(self, paper_ids: Sequence[str]) -> dict[str, list[str]]:
        """paper id -> its authors' names in order (papers without authors are absent)."""
        out: dict[str, list[str]] = {}
        ids = list(dict.fromkeys(paper_ids))
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            for pid, name in self.conn.execute(
                    f"SELECT pa.paper_id, a.name FROM paper_authors pa JOIN authors a ON a.id = pa.author_id "
                    f"WHERE pa.paper_id IN ({_marks(len(chunk))}) ORDER BY pa.paper_id, pa.position", chunk):
                out.setdefault(pid, []).append(name)
        return out

    # -- alerts -----------------------------------------------------------------------------------------
    def add_alert(self, user_id: int, phrase: str) -> bool:
        """Add an alert for ``phrase``; False if the user has one with the same words. ValueError for a phrase
        without words or too long, :class:`LimitReached` past :data:`MAX_ALERTS`."""
        words = alert_words(phrase)
        if not words:
            raise ValueError("an alert needs words")
        if len(words) > MAX_ALERT_WORDS or len(phrase) > MAX_ALERT_CHARS:
            raise ValueError("alert too long")
        query = " ".join(words)
        with self.transaction():
            if self.conn.execute("SELECT 1 FROM alerts WHERE user_id = ? AND query = ?", (user_id, query)).fetchone():
                return False
            have = self.conn.execute("SELECT count(*) FROM alerts WHERE user_id = ?", (user_id,)).fetchone()[0]
            if have >= MAX_ALERTS:
                raise LimitReached(f"at most {MAX_ALERTS} alerts")
            self.conn.execute("INSERT INTO alerts (user_id, query, phrase) VALUES (?, ?, ?)",
                              (user_id, query, phrase))
        return True

    def remove_alert(self, user_id: int, phrase: str) -> str | None:
        """Remove the alert with the words of ``phrase``; returns its phrase as stored, None if there was none."""
        query = " ".join(alert_words(phrase))
        row = self.conn.execute("SELECT phrase FROM alerts WHERE user_id = ? AND query = ?",
                                (user_id, query)).fetchone()
        if row is None:
            return None
        with self.transaction():
            self.conn.execute("DELETE FROM alerts WHERE user_id = ? AND query = ?", (user_id, query))
        return str(row[0])

    def alerts(self, user_id: int) -> list[Alert]:
        return [Alert(r[0], tuple(r[1].split())) for r in self.conn.execute(
            "SELECT phrase, query FROM alerts WHERE user_id = ? ORDER BY created_at, rowid", (user_id,))]

    def alerts_of(self, user_ids: Sequence[int]) -> dict[int, list[Alert]]:
        """user id -> alerts, for many users at once (users without alerts are absent)."""
        out: dict[int, list[Alert]] = {}
        ids = list(dict.fromkeys(user_ids))
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            for uid, phrase, query in self.conn.execute(
                    f"SELECT user_id, phrase, query FROM alerts WHERE user_id IN ({_marks(len(chunk))}) "
                    f"ORDER BY user_id, created_at, rowid", chunk):
                out.setdefault(uid, []).append(Alert(phrase, tuple(query.split())))
        return out

    def phrase_matches(self, words: Sequence[str], paper_ids: Sequence[str]) -> set[str]:
        """Those of ``paper_ids`` whose title or abstract contains the phrase ``words`` (FTS5, whole words)."""
        query = fts_phrase(words)
        if query == '""':
            return set()
        ids = list(dict.fromkeys(paper_ids))
        out: set[str] = set()
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            out.update(r[0] for r in self.conn.execute(
                f"SELECT p.id FROM papers p JOIN papers_fts ON papers_fts.rowid = p.rowid "
                f"WHERE p.id IN ({_marks(len(chunk))}) AND papers_fts MATCH ?", [*chunk, query]))
        return out
