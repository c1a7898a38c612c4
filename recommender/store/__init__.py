"""Storage of arxiv-digest: every SQL statement of the product lives in this package.

:class:`Store` opens (and migrates) one SQLite database in WAL mode through sqlite-utils and exposes typed
methods grouped by subject: papers (``papers.py``), the taxonomy (``taxonomy.py``), and users, feedback,
deliveries and predictions (``users.py``). Callers get and give dataclasses, never rows.
"""
from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Iterator

import sqlite_utils

from recommender.store.papers import PaperQueries, UpsertStats, content_hash
from recommender.store.schema import SCHEMA_VERSION, migrate
from recommender.store.taxonomy import TaxonomyQueries, UnknownCategory
from recommender.store.users import User, UserQueries
from recommender.store.bot_state import BotStateQueries

log = logging.getLogger(__name__)

__all__ = ["Store", "UpsertStats", "User", "UnknownCategory", "content_hash", "SCHEMA_VERSION"]


class Store(PaperQueries, TaxonomyQueries, UserQueries, BotStateQueries):
    """One SQLite database of papers, users and their feedback."""

    def __init__(self, path: Path | str, taxonomy: Path | None = None) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._depth = 0
        migrate(conn)
        if taxonomy is not None and self.conn.execute("SELECT count(*) FROM taxonomy").fetchone()[0] == 0:
            self.load_taxonomy(taxonomy)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction (nested calls join the outer one); rolled back on any error."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self._depth = 0

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def stats(self) -> dict[str, object]:
        out = self.paper_stats()
        c = self.conn
        out.update(
            users=c.execute("SELECT count(*) FROM users").fetchone()[0],
            feedback=c.execute("SELECT count(*) FROM feedback").fetchone()[0],
            deliveries=c.execute("SELECT count(*) FROM deliveries").fetchone()[0],
            predicted_papers=c.execute("SELECT count(DISTINCT paper_id) FROM predictions").fetchone()[0],
            schema_version=self.schema_version,
            database=str(self.path),
        )
        return out

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
