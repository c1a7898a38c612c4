"""Who gets what, when: the pure scheduling logic of daily digests and "no announcement" notices.

A user's digest is due for the latest announcement they have not received once the most recent occurrence
of their local digest hour (``mark``) is at or after the moment that announcement was first seen by an
ingestion run. So a digest goes out at the first local hour after arXiv announced (a Tokyo user at 08:00
gets the listing announced at 09:00 the next morning, a Pacific user the same morning), and a bot that was
down at the hour catches up at once. When the hour comes and nothing was announced during the day before
it (the latest listing was already due at their previous hour: Fridays, Saturdays, holidays, a late arXiv),
the user gets one notice for that local date, never more.
Users who are paused, blocked, without a chat, or without any profile (no categories, interests or likes)
are skipped. Everything here takes plain values, so it is tested without a clock or a database.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from recommender.store import Store, User

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Due:
    user: User
    kind: str  # "digest" | "notice"
    day: str  # announcement day (digest) or the user's local date (notice)
    last_day: str | None = None  # the last announcement they received


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown timezone %r; using UTC", name)
        return ZoneInfo("UTC")


def last_mark(now: datetime, tz: str, hour: int) -> datetime:
    """The latest digest-hour mark <= ``now``, as a local time in ``tz``: ``hour``:00 happens once per local date,
    at its first occurrence when the clock repeats it (autumn) and, when the clock skips it (spring), at the
    moment the clock jumps past it. Compared as instants, never as wall-clock times."""
    z = zone(tz)
    today = now.astimezone(z).date()
    for day in (today, today - timedelta(days=1)):
        # fold=0: the first of two repeated times; for a skipped time, the offset before the jump
        mark = datetime(day.year, day.month, day.day, hour, tzinfo=z).astimezone(z)
        if mark.astimezone(UTC) <= now.astimezone(UTC):
            return mark
    raise AssertionError("unreachable: yesterday's mark is always in the past")


def parse_utc(value: str | None, day: str | None = None) -> datetime | None:
    """An ISO timestamp as aware UTC; without one, the start (UTC) of ``day``."""
    if value:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    if day:
        return datetime.fromisoformat(day).replace(tzinfo=UTC)
    return None


def due(users: list[User], now: datetime, latest: str | None, first_seen: datetime | None,
        last_days: dict[int, str], profiled: set[int], noticed: set[tuple[int, str]],
        force: bool = False) -> list[Due]:
    """The digests and notices due at ``now`` (``force``: every digest not yet received, whatever the hour)."""
    out: list[Due] = []
    for u in users:
        if not u.active or u.paused or u.chat_id is None or u.id not in profiled:
            continue
        last = last_days.get(u.id)
        fresh = latest is not None and (last is None or latest > last)
        if force:
            if fresh and latest is not None:
                out.append(Due(u, "digest", latest, last))
            continue
        mark = last_mark(now, u.timezone, u.digest_hour)
        if fresh and latest is not None and (first_seen is None or first_seen <= mark):
            out.append(Due(u, "digest", latest, last))
            continue
        local_day = mark.date().isoformat()
        previous = last_mark(mark.astimezone(UTC) - timedelta(seconds=1), u.timezone, u.digest_hour)
        quiet = first_seen is None or first_seen <= previous  # the latest listing was already due last time
        if not fresh and quiet and last is not None and (u.id, local_day) not in noticed:
            out.append(Due(u, "notice", local_day, last))
    return out


def due_now(store: Store, now: datetime, force: bool = False) -> list[Due]:
    """``due`` over the store's users and announcements."""
    latest = store.latest_announcement()
    first_seen = parse_utc(store.announcement_first_seen(latest), latest) if latest else None
    users = store.list_users(active_only=True)
    days = {last_mark(now, u.timezone, u.digest_hour).date().isoformat() for u in users}
    return due(users, now, latest, first_seen, store.last_digest_days(), store.profiled_user_ids(),
               store.notices(days), force=force)
