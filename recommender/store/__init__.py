"""Storage of arxiv-digest: every SQL statement of the product lives in this package.

:class:`Store` opens (and migrates) one SQLite database in WAL mode with the standard ``sqlite3`` and exposes typed
methods grouped by subject: papers (``papers.py``), the taxonomy (``taxonomy.py``), and users, feedback,
deliveries and predictions (``users.py``), group chats and quick checks (``groups.py``), references matched by
title (``library.py``). Callers get and give dataclasses, never rows.

One Store is shared by every thread of a process: each thread gets its own SQLite connection, opened on its
first query (WAL, so readers never wait for the writer; a busy timeout, so two writers queue instead of
failing), and its own transaction nesting; :meth:`Store.close` closes them all. An in-memory database
(``":memory:"``) cannot be shared between connections, so it keeps a single connection for every thread.
"""
from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recommender.store.bot_state import BotStateQueries
from recommender.store.follows import FollowQueries
from recommender.store.groups import GroupQueries
from recommender.store.harvest import HarvestQueries, HarvestWindow
from recommender.store.library import LibraryQueries
from recommender.store.papers import PaperQueries, UpsertStats, content_hash
from recommender.store.schema import SCHEMA_VERSION, migrate
from recommender.store.taxonomy import TaxonomyQueries, UnknownCategory
from recommender.store.users import User, UserQueries

log = logging.getLogger(__name__)

__all__ = ["Store", "HarvestWindow", "UpsertStats", "User", "UnknownCategory", "content_hash", "SCHEMA_VERSION"]


class Store(PaperQueries, TaxonomyQueries, UserQueries, BotStateQueries, HarvestQueries, FollowQueries,
            LibraryQueries, GroupQueries):
    """One SQLite database of papers, users and their feedback; safe to share between threads."""

    BUSY_TIMEOUT_S = 30.0

    def __init__(self, path: Path | str, taxonomy: Path | None = None) -> None:
        self.path = Path(path)
        self._memory = str(path) == ":memory:"
        if not self._memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conns_lock = threading.Lock()
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._closed = False
        self._shared_depth = types.SimpleNamespace(tx_depth=0)
        self._shared: sqlite3.Connection | None = self._open() if self._memory else None
        migrate(self.conn)
        if taxonomy is not None and self.conn.execute("SELECT count(*) FROM taxonomy").fetchone()[0] == 0:
            self.load_taxonomy(taxonomy)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path) if not self._memory else ":memory:", isolation_level=None,
                               check_same_thread=False, timeout=self.BUSY_TIMEOUT_S)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA busy_timeout = {int(self.BUSY_TIMEOUT_S * 1000)}")
        with self._conns_lock:
            if self._closed:
                conn.close()
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            # connections of threads that have ended are closed here, so short-lived threads leak nothing
            alive = []
            for thread, c in self._conns:
                if thread.is_alive():
                    alive.append((thread, c))
                else:
                    c.close()
            alive.append((threading.current_thread(), conn))
            self._conns = alive
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        if self._shared is not None:
            return self._shared
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open()
        return conn

    @property
    def _depth(self) -> int:
        return int(getattr(self._depth_holder(), "tx_depth", 0))

    @_depth.setter
    def _depth(self, value: int) -> None:
        self._depth_holder().tx_depth = value

    def _depth_holder(self) -> Any:
        """Where the transaction depth lives: per thread, or the Store itself for a shared in-memory one."""
        return self._local if self._shared is None else self._shared_depth

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction of this thread (nested calls join the outer one); rolled back on any error."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")
        finally:
            self._depth = 0

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file, so the file alone holds everything (e.g. before
        copying a state directory)."""
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

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
        """Close every thread's connection; the Store cannot be used afterwards."""
        with self._conns_lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for _, c in conns:
            c.close()
        if self._shared is not None:
            self._shared.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
