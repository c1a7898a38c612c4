"""SQL for bulk-harvest progress: the ``harvest_windows`` table (one row per route, query and window of days).

A harvest (:mod:`recommender.sources.harvest`) splits its date range into windows and pages through each. Every
page's papers are upserted together with the window's new cursor (the API's next start offset or the OAI-PMH
resumption token) in ONE transaction, so a harvest stopped anywhere (Ctrl-C, SIGTERM, a kill, arXiv refusing)
leaves the store consistent and the next run goes on from the last committed page; a finished window is
``done`` and skipped; a window too deep for one query is ``split`` into two halves that are harvested apart.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recommender.models import Paper
from recommender.store.papers import UpsertStats

WINDOW_STATUSES = ("pending", "done", "split")


@dataclass(frozen=True)
class HarvestWindow:
    """The stored progress of one window: its key, status, where to go on, and what it brought so far."""

    route: str
    query: str
    first_day: str
    last_day: str
    status: str = "pending"
    cursor: str | None = None
    total: int | None = None
    pages: int = 0
    papers: int = 0

    @property
    def done(self) -> bool:
        return self.status == "done"

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.route, self.query, self.first_day, self.last_day)


def _window(row: sqlite3.Row) -> HarvestWindow:
    return HarvestWindow(route=row["route"], query=row["query"], first_day=row["first_day"],
                         last_day=row["last_day"], status=row["status"], cursor=row["cursor"],
                         total=row["total"], pages=row["pages"], papers=row["papers"])


class HarvestQueries:
    """Mixin of :class:`recommender.store.Store` for ``harvest_windows``. Expects ``self.conn``."""

    if TYPE_CHECKING:  # provided by Store and PaperQueries
        @property
        def conn(self) -> sqlite3.Connection: ...

        def transaction(self) -> AbstractContextManager[None]: ...

        def upsert_papers(self, papers: Iterable[Paper], batch_size: int = 5000) -> UpsertStats: ...

    def harvest_window(self, route: str, query: str, first_day: str, last_day: str) -> HarvestWindow:
        """The stored window (created ``pending`` when new)."""
        key = (route, query, first_day, last_day)
        with self.transaction():
            self.conn.execute(
                "INSERT OR IGNORE INTO harvest_windows (route, query, first_day, last_day) VALUES (?, ?, ?, ?)", key)
            row = self.conn.execute(
                "SELECT * FROM harvest_windows WHERE route = ? AND query = ? AND first_day = ? AND last_day = ?",
                key).fetchone()
        return _window(row)

    def harvest_windows(self, route: str | None = None) -> list[HarvestWindow]:
        """Every stored window (of ``route``), oldest first."""
        sql = "SELECT * FROM harvest_windows"
        params: tuple[str, ...] = ()
        if route is not None:
            sql, params = sql + " WHERE route = ?", (route,)
        return [_window(r) for r in self.conn.execute(sql + " ORDER BY first_day, last_day, query", params)]

    def record_harvest_page(self, window: HarvestWindow, papers: Sequence[Paper], cursor: str | None,
                            total: int | None, done: bool) -> tuple[HarvestWindow, UpsertStats]:
        """Store one page: its papers (upserted) and the window's new cursor, status and counts, in one
        transaction. Returns the updated window and the page's upsert counts."""
        status = "done" if done else "pending"
        with self.transaction():
            stats = self.upsert_papers(papers)
            self.conn.execute(
                "UPDATE harvest_windows SET status = ?, cursor = ?, total = coalesce(?, total), pages = pages + 1, "
                "papers = papers + ?, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ','now') "
                "WHERE route = ? AND query = ? AND first_day = ? AND last_day = ?",
                (status, None if done else cursor, total, len(papers), *window.key))
        new = HarvestWindow(window.route, window.query, window.first_day, window.last_day, status,
                            None if done else cursor, total if total is not None else window.total,
                            window.pages + 1, window.papers + len(papers))
        return new, stats

    def set_harvest_window(self, window: HarvestWindow, status: str, total: int | None = None,
                           cursor: str | None = None) -> HarvestWindow:
        """Mark a window ``done`` (nothing to fetch), ``split`` (its halves are harvested instead) or back to
        ``pending`` with a new ``cursor`` (e.g. an expired resumption token: start the window over)."""
        if status not in WINDOW_STATUSES:
            raise ValueError(f"unknown harvest window status {status!r}")
        with self.transaction():
            self.conn.execute(
                "UPDATE harvest_windows SET status = ?, cursor = ?, total = coalesce(?, total), "
                "updated_at = strftime('%Y-%m-%dT%H:%M:%SZ','now') "
                "WHERE route = ? AND query = ? AND first_day = ? AND last_day = ?",
                (status, cursor, total, *window.key))
        return HarvestWindow(window.route, window.query, window.first_day, window.last_day, status, cursor,
                             total if total is not None else window.total, window.pages, window.papers)
