"""SQL the bot needs beyond single users: bulk reads for delivery runs and the "no announcement" notices.

Delivery runs look at every user at once, so these queries answer for all users in one statement each:
who has a profile, each user's last digest day, which notices went out. A notice ("no announcement today")
is recorded as a ``digests`` row keyed by the user's local date with status ``notice``; it never counts as a
delivered digest (``last_digest_day`` only counts sent, empty and skipped).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

DONE = ("sent", "empty", "skipped", "failed")  # failed: Telegram refused it (400); not retried that day


class BotStateQueries:
    """Mixin of :class:`recommender.store.Store` for the bot's delivery bookkeeping."""

    if TYPE_CHECKING:  # provided by Store
        @property
        def conn(self) -> sqlite3.Connection: ...

        def transaction(self) -> AbstractContextManager[None]: ...

    def announcement_first_seen(self, day: str) -> str | None:
        """When a feed fetch first saw the announcement of ``day`` (ISO UTC), None if never fetched."""
        seen: str | None = self.conn.execute(
            "SELECT min(fetched_at) FROM feed_fetches WHERE announced = ?", (day,)).fetchone()[0]
        return seen

    def last_digest_days(self) -> dict[int, str]:
        """user id -> latest announcement day whose digest is done (sent, empty, skipped or refused)."""
        marks = ",".join("?" * len(DONE))
        return dict(self.conn.execute(
            f"SELECT user_id, max(announced) FROM digests WHERE status IN ({marks}) GROUP BY user_id", DONE))

    def digest_statuses(self, announced: str) -> dict[int, str]:
        """user id -> status of their digest of announcement day ``announced`` (users with a row only)."""
        return dict(self.conn.execute("SELECT user_id, status FROM digests WHERE announced = ?", (announced,)))

    def profiled_user_ids(self) -> set[int]:
        """Users who follow a category or an author, described interests, set an alert or liked a paper."""
        return {r[0] for r in self.conn.execute(
            "SELECT user_id FROM user_categories UNION SELECT id FROM users WHERE interests != '' "
            "UNION SELECT user_id FROM feedback WHERE value = 1 "
            "UNION SELECT user_id FROM author_follows UNION SELECT user_id FROM alerts")}

    def announcement_days_between(self, after: str, until: str) -> list[str]:
        """Announcement days ``after`` < day <= ``until`` (ISO dates), oldest first: a weekly digest's days."""
        return [r[0] for r in self.conn.execute(
            "SELECT DISTINCT announced FROM announcements WHERE announced > ? AND announced <= ? ORDER BY announced",
            (after, until))]

    def notices(self, local_days: Iterable[str]) -> set[tuple[int, str]]:
        days = sorted(set(local_days))
        if not days:
            return set()
        return {(u, d) for u, d in self.conn.execute(
            f"SELECT user_id, announced FROM digests WHERE status = 'notice' AND announced IN "
            f"({','.join('?' * len(days))})", days)}

    def record_notice(self, user_id: int, local_day: str) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO digests (user_id, announced, status, completed_at) VALUES (?, ?, 'notice', "
                "strftime('%Y-%m-%dT%H:%M:%SZ','now')) ON CONFLICT(user_id, announced) DO NOTHING",
                (user_id, local_day))
