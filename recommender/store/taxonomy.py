"""SQL for the arXiv category taxonomy: loading ``data/taxonomy.json`` (parsed by :mod:`recommender.taxonomy`)
and resolving category codes.

Aliases (``math.MP`` -> ``math-ph``) and subsumed archives (``chao-dyn`` -> ``nlin.CD``) resolve to their
canonical code; an unknown code raises :class:`UnknownCategory` listing close matches.
"""
from __future__ import annotations

import difflib
import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from recommender.taxonomy import read_taxonomy


class UnknownCategory(ValueError):
    """A category code that arXiv's taxonomy does not know."""


class TaxonomyQueries:
    """Mixin of :class:`recommender.store.Store` for the ``taxonomy`` table. Expects ``self.conn``."""

    if TYPE_CHECKING:  # provided by Store
        @property
        def conn(self) -> sqlite3.Connection: ...

        def transaction(self) -> AbstractContextManager[None]: ...

    def load_taxonomy(self, path: Path) -> int:
        """(Re)load the taxonomy from arXiv's taxonomy JSON; returns the number of codes."""
        rows = [(c.code, c.name, c.archive, c.group, int(c.active), c.canonical)
                for c in read_taxonomy(path).categories]
        with self.transaction():
            self.conn.execute("DELETE FROM taxonomy")
            self.conn.executemany(
                "INSERT INTO taxonomy (code, name, archive, grp, active, canonical) VALUES (?, ?, ?, ?, ?, ?)", rows
            )
        return len(rows)

    def category_names(self) -> dict[str, str]:
        """Active canonical code -> name."""
        return dict(self.conn.execute(
            "SELECT code, name FROM taxonomy WHERE active = 1 AND canonical = code ORDER BY code"))

    def category_groups(self) -> dict[str, list[str]]:
        """Group name -> active canonical codes, for menus."""
        out: dict[str, list[str]] = {}
        for code, grp in self.conn.execute(
            "SELECT code, grp FROM taxonomy WHERE active = 1 AND canonical = code ORDER BY grp, code"
        ):
            out.setdefault(grp or "Other", []).append(code)
        return out

    def is_archive(self, code: str) -> bool:
        """True for an archive with several categories (``cs``, ``math``, ``astro-ph``)."""
        return self.conn.execute(
            "SELECT 1 FROM taxonomy WHERE archive = ? AND code != ? AND active = 1 LIMIT 1", (code, code)
        ).fetchone() is not None

    def canonical_category(self, code: str) -> str:
        """The canonical active code for ``code`` (case-insensitive); raises UnknownCategory."""
        raw = (code or "").strip()
        row = self.conn.execute("SELECT canonical FROM taxonomy WHERE code = ?", (raw,)).fetchone()
        if row is None:
            row = self.conn.execute(
                "SELECT canonical FROM taxonomy WHERE lower(code) = lower(?)", (raw,)).fetchone()
        if row is not None:
            return str(row[0])
        known = [r[0] for r in self.conn.execute("SELECT code FROM taxonomy WHERE active = 1")]
        if not known:
            raise UnknownCategory("the category taxonomy is not loaded")
        close = difflib.get_close_matches(raw, known, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else " Categories look like cs.LG or astro-ph.GA."
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        raise UnknownCategory(f"unknown arXiv category {shown!r}.{hint}")
