"""Who gets what, when: the pure scheduling logic of daily digests and "no announcement" notices.

A user's digest is due for the latest announcement they have not received once the most recent occurrence
of their local digest hour (``mark``) is at or after the moment that announcement was first seen by an
ingestion run. So a digest goes out at the first local hour after arXiv announced (a Tokyo user at 08:00
gets the listing announced at 09:00 the next morning, a Pacific user the same morning), and a bot that was
down at the hour catches up at once. When the hour comes and nothing was announced during the day before
it (the latest listing was already due at their previous hour: Fridays, Saturdays, holidays, a late arXiv),
the user gets one notice for that local date, never more.

A weekly user (``digest_weekday`` set) is due once a week, at their hour on that weekday, when an announcement
came since their last digest: one digest of the best papers of the announcement days after their last digest,
within the last week (:func:`covered_days`). It is recorded like a daily digest, keyed by the latest
announcement day it covers, so the next one (weekly or daily, after a switch) starts after it and nothing is
sent twice. Weekly users get no "no announcement" notices.
Users who are paused, blocked, without a chat, or without any profile (no categories, interests or likes)
are skipped. Everything here takes plain values, so it is tested without a clock or a database.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from recommender.store import Store, User

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Due:
    user: User
    kind: str  # "digest" | "notice"
    day: str  # announcement day (digest) or the user's local date (notice)
    last_day: str | None = None  # the last announcement they received
    days: tuple[str, ...] = ()  # a weekly digest: the announcement days it covers (``day`` is the latest)

WEEK = 7  # days a weekly digest looks back at most


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


def last_weekly_mark(now: datetime, tz: str, hour: int, weekday: int) -> datetime:
    """The latest ``hour``:00 on ``weekday`` (Monday = 0) in ``tz`` that is <= ``now`` (as :func:`last_mark`)."""
    mark = last_mark(now, tz, hour)
    for _ in range(8):
        if mark.weekday() == weekday:
            return mark
        mark = last_mark(mark.astimezone(UTC) - timedelta(seconds=1), tz, hour)
    raise AssertionError("unreachable: one of eight consecutive marks falls on the weekday")


def covered_days(announced: Sequence[str], latest: str, last: str | None) -> tuple[str, ...]:
    """The announcement days of a weekly digest ending at ``latest``: those of ``announced`` after ``last`` (the
    last digest's day) and within the week up to ``latest``, oldest first; at least ``latest`` itself."""
    start = (date.fromisoformat(latest) - timedelta(days=WEEK)).isoformat()
    days = [d for d in sorted(set(announced)) if start < d <= latest and (last is None or d > last)]
    return tuple(days) if latest in days else (*days, latest)


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
        force: bool = False, announced: Sequence[str] = ()) -> list[Due]:
    """The digests and notices due at ``now`` (``force``: every digest not yet received, whatever the hour).
    ``announced``: the announcement days of the last week (for weekly digests)."""
    out: list[Due] = []
    for u in users:
        if not u.active or u.paused or u.chat_id is None or u.id not in profiled:
            continue
        last = last_days.get(u.id)
        fresh = latest is not None and (last is None or latest > last)
        weekly = u.digest_weekday is not None
        if force:
            if fresh and latest is not None:
                out.append(Due(u, "digest", latest, last, covered_days(announced, latest, last) if weekly else ()))
            continue
        if u.digest_weekday is not None:
            week_mark = last_weekly_mark(now, u.timezone, u.digest_hour, u.digest_weekday)
            if fresh and latest is not None and (first_seen is None or first_seen <= week_mark):
                out.append(Due(u, "digest", latest, last, covered_days(announced, latest, last)))
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
    announced: list[str] = []
    if latest is not None and any(u.digest_weekday is not None for u in users):
        start = (date.fromisoformat(latest) - timedelta(days=WEEK)).isoformat()
        announced = store.announcement_days_between(start, latest)
    return due(users, now, latest, first_seen, store.last_digest_days(), store.profiled_user_ids(),
               store.notices(days), force=force, announced=announced)
