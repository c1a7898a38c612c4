"""SQL for group chats and quick checks: which chats are groups the bot serves, and the quick-check log.

A group is a ``users`` row whose id is the group's (negative) chat id, so its settings, followed categories,
likes and digests are stored, ranked, scheduled and delivered exactly like a person's, and separately from each
member's own; ``chat_groups`` marks such rows (and keeps the group's title). Removal from the group sets the
row inactive (``users.active``), which the scheduler already skips; re-adding sets it active again.

Quick checks (one short question after a digest about the papers the ranker is least sure of) are recorded per
(user, announcement day) in ``quickchecks`` *before* they are sent (:meth:`GroupQueries.claim_quickcheck`), so a
crash or restart never asks twice; ``quickcheck_settings`` holds a user's explicit on/off (no row: on once the
user is a week old).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

QUICKCHECK_AFTER = timedelta(days=7)  # quick checks are on by default once a user is this old


class GroupQueries:
    """Mixin of :class:`recommender.store.Store` for group chats and quick checks."""

    if TYPE_CHECKING:  # provided by Store
        @property
        def conn(self) -> sqlite3.Connection: ...

        def transaction(self) -> AbstractContextManager[None]: ...

    # -- groups -----------------------------------------------------------------------------------------
    def add_group(self, chat_id: int, title: str = "") -> None:
        """Mark the users row ``chat_id`` (which must exist) as a group; its title is updated."""
        with self.transaction():
            self.conn.execute("INSERT INTO chat_groups (chat_id, title) VALUES (?, ?) "
                              "ON CONFLICT(chat_id) DO UPDATE SET title = excluded.title", (chat_id, title[:200]))

    def is_group(self, user_id: int) -> bool:
        return self.conn.execute("SELECT 1 FROM chat_groups WHERE chat_id = ?", (user_id,)).fetchone() is not None

    def group_ids(self) -> set[int]:
        return {r[0] for r in self.conn.execute("SELECT chat_id FROM chat_groups")}

    def move_group(self, old: int, new: int) -> bool:
        """A group upgraded to a supergroup gets a new chat id: its row and every row keyed by it (settings,
        follows, likes, digests, deliveries, ...: each table with a foreign key to ``users``) move to ``new``, in
        one transaction. False (nothing changes) if ``old`` is no group or ``new`` is known already."""
        with self.transaction():
            if not self.is_group(old) or self.conn.execute("SELECT 1 FROM users WHERE id = ?", (new,)).fetchone():
                return False
            cols = [r[1] for r in self.conn.execute("PRAGMA table_info(users)") if r[1] not in ("id", "chat_id")]
            self.conn.execute(f"INSERT INTO users (id, chat_id, {', '.join(cols)}) "
                              f"SELECT ?, ?, {', '.join(cols)} FROM users WHERE id = ?", (new, new, old))
            tables = [r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for fk in self.conn.execute(f"PRAGMA foreign_key_list({table})").fetchall():
                    if fk[2] == "users" and table != "users":
                        self.conn.execute(f"UPDATE {table} SET {fk[3]} = ? WHERE {fk[3]} = ?", (new, old))
            self.conn.execute("DELETE FROM users WHERE id = ?", (old,))
        return True

    # -- quick checks -----------------------------------------------------------------------------------
    def set_quickcheck(self, user_id: int, enabled: bool) -> None:
        with self.transaction():
            self.conn.execute("INSERT INTO quickcheck_settings (user_id, enabled) VALUES (?, ?) "
                              "ON CONFLICT(user_id) DO UPDATE SET enabled = excluded.enabled",
                              (user_id, int(enabled)))

    def quickcheck_choice(self, user_id: int) -> bool | None:
        """The user's explicit choice, None if they never made one."""
        row = self.conn.execute("SELECT enabled FROM quickcheck_settings WHERE user_id = ?", (user_id,)).fetchone()
        return None if row is None else bool(row[0])

    def quickcheck_enabled(self, user_id: int, now: datetime | None = None) -> bool:
        """Their choice, or by default: on once the user was created at least a week before ``now``."""
        choice = self.quickcheck_choice(user_id)
        if choice is not None:
            return choice
        row = self.conn.execute("SELECT created_at FROM users WHERE id = ?", (user_id,)).fetchone()
        if row is None or not row[0]:
            return False
        created = datetime.fromisoformat(str(row[0]).replace("Z", "+00:00"))
        created = created if created.tzinfo else created.replace(tzinfo=UTC)
        return (now or datetime.now(UTC)) - created >= QUICKCHECK_AFTER

    def claim_quickcheck(self, user_id: int, announced: str, paper_ids: Sequence[str]) -> bool:
        """Record, before sending, that ``announced``'s quick check asks about ``paper_ids``; False (nothing
        changes) if that digest had its quick check already (sent, being sent, or lost in a crash)."""
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO quickchecks (user_id, announced, paper_ids) VALUES (?, ?, ?) "
                "ON CONFLICT(user_id, announced) DO NOTHING", (user_id, announced, " ".join(paper_ids)))
        return cur.rowcount > 0

    def finish_quickcheck(self, user_id: int, announced: str, message_id: int | None, ok: bool = True) -> None:
        with self.transaction():
            self.conn.execute("UPDATE quickchecks SET status = ?, message_id = ? WHERE user_id = ? AND announced = ?",
                              ("sent" if ok else "failed", message_id, user_id, announced))

    def quickcheck(self, user_id: int, announced: str) -> tuple[list[str], str] | None:
        """(papers asked about, status) of a digest's quick check, None if it had none."""
        row = self.conn.execute("SELECT paper_ids, status FROM quickchecks WHERE user_id = ? AND announced = ?",
                                (user_id, announced)).fetchone()
        return None if row is None else (str(row[0]).split(), str(row[1]))
