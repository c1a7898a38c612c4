"""SQL for people: users and their settings, followed categories, likes/dislikes, digests and deliveries,
plus the small key-value ``meta`` table and stored category predictions.

The delivery log is what makes sending safe to repeat: a paper is in ``deliveries`` for a user once it was (about
to be) sent, and a ``digests`` row per (user, announcement day) records where that day's digest stands:
``pending`` (being built), ``sending`` (planned papers recorded, request under way: fate unknown after a crash),
``sent``, ``empty``, ``failed`` (Telegram refused it), ``skipped``.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

USER_SETTINGS = ("chat_id", "name", "timezone", "digest_hour", "digest_size", "min_score", "cross_lists",
                 "paused", "active", "interests", "digest_weekday")


MAX_DIGEST_SIZE = 20


def _bounded(value: object, lo: int, hi: int, default: int) -> int:
    return min(max(value, lo), hi) if isinstance(value, int) else default


@dataclass
class User:
    id: int
    chat_id: int | None = None
    name: str | None = None
    timezone: str = "UTC"
    digest_hour: int = 8
    digest_size: int = 5
    min_score: float = 0.3
    cross_lists: bool = True
    paused: bool = False
    active: bool = True
    interests: str = ""
    categories: list[str] = field(default_factory=list)
    digest_weekday: int | None = None  # None: a digest every announcement; 0-6 (Monday = 0): weekly on that day


class UserQueries:
    """Mixin of :class:`recommender.store.Store` for users, feedback, deliveries, predictions, meta."""

    if TYPE_CHECKING:  # provided by Store
        @property
        def conn(self) -> sqlite3.Connection: ...

        def transaction(self) -> AbstractContextManager[None]: ...

    # -- users ------------------------------------------------------------------------------------------
    def get_user(self, user_id: int) -> User | None:
        row = self.conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        if row is None:
            return None
        cats = [r[0] for r in self.conn.execute(
            "SELECT category FROM user_categories WHERE user_id = ? ORDER BY category", (user_id,))]
        # settings saved before they were bounded (a digest size of 19999) are read back within bounds
        return User(id=row["id"], chat_id=row["chat_id"], name=row["name"], timezone=row["timezone"],
                    digest_hour=_bounded(row["digest_hour"], 0, 23, 8), digest_size=_bounded(row["digest_size"], 1,
                    MAX_DIGEST_SIZE, 5), min_score=min(max(float(row["min_score"]), 0.0), 1.0),
                    cross_lists=bool(row["cross_lists"]), paused=bool(row["paused"]), active=bool(row["active"]),
                    interests=row["interests"], categories=cats,
                    digest_weekday=row["digest_weekday"] if row["digest_weekday"] in range(7) else None)

    def ensure_user(self, user_id: int, **defaults: object) -> User:
        """Create the user with ``defaults`` if absent; return the stored user."""
        unknown = set(defaults) - set(USER_SETTINGS)
        if unknown:
            raise ValueError(f"unknown user settings: {sorted(unknown)}")
        cols = ["id", *defaults]
        with self.transaction():
            self.conn.execute(
                f"INSERT OR IGNORE INTO users ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                [user_id, *defaults.values()],
            )
        user = self.get_user(user_id)
        assert user is not None
        return user

    def update_user(self, user_id: int, **values: object) -> User:
        unknown = set(values) - set(USER_SETTINGS)
        if unknown:
            raise ValueError(f"unknown user settings: {sorted(unknown)}")
        if values:
            sets = ",".join(f"{k} = ?" for k in values)
            with self.transaction():
                self.conn.execute(f"UPDATE users SET {sets} WHERE id = ?", [*values.values(), user_id])
        user = self.get_user(user_id)
        if user is None:
            raise KeyError(f"no user {user_id}")
        return user

    def list_users(self, active_only: bool = False) -> list[User]:
        sql = "SELECT id FROM users" + (" WHERE active = 1 AND paused = 0" if active_only else "") + " ORDER BY id"
        return [u for (uid,) in self.conn.execute(sql).fetchall() if (u := self.get_user(uid))]

    def set_user_categories(self, user_id: int, categories: Iterable[str], replace: bool = False) -> None:
        with self.transaction():
            if replace:
                self.conn.execute("DELETE FROM user_categories WHERE user_id = ?", (user_id,))
            self.conn.executemany("INSERT OR IGNORE INTO user_categories (user_id, category) VALUES (?, ?)",
                                  [(user_id, c) for c in categories])

    def remove_user_categories(self, user_id: int, categories: Iterable[str]) -> int:
        before = self.conn.total_changes
        with self.transaction():
            self.conn.executemany("DELETE FROM user_categories WHERE user_id = ? AND category = ?",
                                  [(user_id, c) for c in categories])
        return self.conn.total_changes - before

    # -- feedback ---------------------------------------------------------------------------------------
    def set_feedback(self, user_id: int, paper_id: str, value: int) -> bool:
        """Record a like (+1) or dislike (-1); returns False if it was already exactly that."""
        if value not in (-1, 1):
            raise ValueError("feedback value must be +1 or -1")
        row = self.conn.execute("SELECT value FROM feedback WHERE user_id = ? AND paper_id = ?",
                                (user_id, paper_id)).fetchone()
        if row is not None and row[0] == value:
            return False
        with self.transaction():
            self.conn.execute(
                "INSERT INTO feedback (user_id, paper_id, value) VALUES (?, ?, ?) "
                "ON CONFLICT(user_id, paper_id) DO UPDATE SET value = excluded.value, "
                "created_at = strftime('%Y-%m-%dT%H:%M:%SZ','now')",
                (user_id, paper_id, value),
            )
        return True

    def remove_feedback(self, user_id: int, paper_id: str) -> bool:
        with self.transaction():
            cur = self.conn.execute("DELETE FROM feedback WHERE user_id = ? AND paper_id = ?", (user_id, paper_id))
        return cur.rowcount > 0

    def feedback(self, user_id: int, value: int | None = None) -> list[tuple[str, int, str]]:
        """(paper_id, value, created_at) of a user's feedback, newest first."""
        sql = "SELECT paper_id, value, created_at FROM feedback WHERE user_id = ?"
        params: list[object] = [user_id]
        if value is not None:
            sql += " AND value = ?"
            params.append(value)
        return [tuple(r) for r in self.conn.execute(sql + " ORDER BY created_at DESC, rowid DESC", params)]

    def liked_ids(self, user_id: int) -> list[str]:
        return [r[0] for r in self.feedback(user_id, 1)]

    def disliked_ids(self, user_id: int) -> list[str]:
        return [r[0] for r in self.feedback(user_id, -1)]

    # -- digests and deliveries -------------------------------------------------------------------------
    def digest_status(self, user_id: int, announced: str) -> str | None:
        row = self.conn.execute("SELECT status FROM digests WHERE user_id = ? AND announced = ?",
                                (user_id, announced)).fetchone()
        return row[0] if row else None

    def set_digest_status(self, user_id: int, announced: str, status: str) -> None:
        done = status in ("sent", "empty", "skipped", "failed")
        with self.transaction():
            self.conn.execute(
                "INSERT INTO digests (user_id, announced, status, completed_at) VALUES (?, ?, ?, "
                "CASE WHEN ? THEN strftime('%Y-%m-%dT%H:%M:%SZ','now') END) "
                "ON CONFLICT(user_id, announced) DO UPDATE SET status = excluded.status, "
                "completed_at = excluded.completed_at",
                (user_id, announced, status, int(done)),
            )

    def last_digest_day(self, user_id: int) -> str | None:
        day: str | None = self.conn.execute(
            "SELECT max(announced) FROM digests WHERE user_id = ? AND status IN ('sent','empty','skipped')",
            (user_id,)).fetchone()[0]
        return day

    def record_delivery(self, user_id: int, paper_id: str, announced: str, rank: int | None = None,
                        score: float | None = None, message_id: int | None = None) -> bool:
        """Log that ``paper_id`` was sent; returns False if it had been sent before (nothing changes)."""
        with self.transaction():
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO deliveries (user_id, paper_id, announced, rank, score, message_id) "
                "VALUES (?, ?, ?, ?, ?, ?)", (user_id, paper_id, announced, rank, score, message_id))
        return cur.rowcount > 0

    def begin_digest(self, user_id: int, announced: str, items: Sequence[tuple[str, int, float]]) -> None:
        """Right before a digest is sent: its planned papers (no message id yet) and the status ``sending``, in
        one transaction. A crash from here until :meth:`record_digest` leaves the digest's fate unknown; the
        next delivery run finds it ``sending`` and re-sends these items, marked (see bot.telegram.delivery)."""
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO deliveries (user_id, paper_id, announced, rank, score) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(user_id, paper_id) DO NOTHING",
                [(user_id, pid, announced, rank, score) for pid, rank, score in items])
            self.set_digest_status(user_id, announced, "sending")

    def record_digest(self, user_id: int, announced: str, items: Sequence[tuple[str, int, float]],
                      message_id: int | None = None) -> None:
        """A digest went out: its papers (with the id of its last message, when known) and the status ``sent``,
        in one transaction. The one way a delivered digest is recorded: Telegram runs, /digest, the terminal."""
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO deliveries (user_id, paper_id, announced, rank, score, message_id) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(user_id, paper_id) DO UPDATE SET "
                "message_id = coalesce(excluded.message_id, deliveries.message_id) "
                "WHERE deliveries.announced = excluded.announced",
                [(user_id, pid, announced, rank, score, message_id) for pid, rank, score in items])
            self.set_digest_status(user_id, announced, "sent")

    def abandon_digest(self, user_id: int, announced: str, items: Sequence[tuple[str, int, float]],
                       status: str) -> None:
        """Telegram refused a digest outright (a 400 given up on, a blocked bot): nothing was delivered, so its
        planned papers are forgotten and the digest gets ``status`` (``failed``; ``pending``: built afresh later)."""
        with self.transaction():
            self.conn.executemany(
                "DELETE FROM deliveries WHERE user_id = ? AND announced = ? AND paper_id = ? AND message_id IS NULL",
                [(user_id, announced, pid) for pid, _, _ in items])
            self.set_digest_status(user_id, announced, status)

    def digest_items(self, user_id: int, announced: str) -> list[tuple[str, int, float]]:
        """The planned papers of a digest whose sending has not been confirmed (no message id), by rank."""
        return [(r[0], r[1], r[2]) for r in self.conn.execute(
            "SELECT paper_id, rank, score FROM deliveries WHERE user_id = ? AND announced = ? AND message_id IS NULL "
            "ORDER BY rank", (user_id, announced))]

    def latest_digest(self, user_id: int) -> tuple[str, str] | None:
        """(announcement day, status) of the user's most recent digest (notices aside), None if none yet."""
        row = self.conn.execute(
            "SELECT announced, status FROM digests WHERE user_id = ? AND status != 'notice' "
            "ORDER BY announced DESC LIMIT 1", (user_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def delivered_ids(self, user_id: int, announced: str | None = None) -> set[str]:
        sql = "SELECT paper_id FROM deliveries WHERE user_id = ?"
        params: list[object] = [user_id]
        if announced is not None:
            sql += " AND announced = ?"
            params.append(announced)
        return {r[0] for r in self.conn.execute(sql, params)}

    # -- predictions ------------------------------------------------------------------------------------
    def save_predictions(self, rows: Iterable[tuple[str, Sequence[tuple[str, float]]]], model: str) -> int:
        """Replace the stored predictions of each paper: rows of (paper_id, [(category, probability), ...])."""
        rows = list(rows)
        with self.transaction():
            self.conn.executemany("DELETE FROM predictions WHERE paper_id = ?", [(pid,) for pid, _ in rows])
            self.conn.executemany(
                "INSERT INTO predictions (paper_id, category, probability, model) VALUES (?, ?, ?, ?)",
                [(pid, cat, float(p), model) for pid, preds in rows for cat, p in preds],
            )
        return len(rows)

    def predictions(self, paper_ids: Sequence[str], model: str | None = None) -> dict[str, list[tuple[str, float]]]:
        """Stored predictions per paper, most probable first; only those of ``model`` when it is given."""
        out: dict[str, list[tuple[str, float]]] = {}
        ids = list(paper_ids)
        by_model = " AND model = ?" if model is not None else ""
        for i in range(0, len(ids), 900):
            chunk = ids[i:i + 900]
            for pid, cat, p in self.conn.execute(
                f"SELECT paper_id, category, probability FROM predictions WHERE paper_id IN "
                f"({','.join('?' * len(chunk))}){by_model} ORDER BY paper_id, probability DESC",
                chunk + ([model] if model is not None else [])
            ):
                out.setdefault(pid, []).append((cat, p))
        return out

    def unpredicted_ids(self, limit: int | None = None, model: str | None = None) -> list[str]:
        """Papers with no stored predictions (of ``model``, when given: an upgraded model re-predicts)."""
        where, args = ("WHERE model = ?", [model]) if model is not None else ("", [])
        sql = (f"SELECT id FROM papers WHERE id NOT IN (SELECT DISTINCT paper_id FROM predictions {where}) "
               "ORDER BY rowid")
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [r[0] for r in self.conn.execute(sql, args)]

    # -- meta -------------------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str | None) -> None:
        with self.transaction():
            self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                              "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))
