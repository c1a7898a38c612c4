"""Announcement days and timestamps: what a plausible one is, checked the same way on import and on read.

An announcement day is a real calendar date written ``YYYY-MM-DD`` (ASCII digits) between arXiv's first
listings in 1991 and tomorrow in UTC (a listing dated in the future is bad data; tomorrow is allowed because
arXiv's evening announcement is already the next day in much of the world). A paper's published/updated
timestamp is ISO 8601 (a date, or a date and time) in the same range. Everything that stores or derives
"today's" announcement goes through :func:`announcement_day`, so one bad record can neither crash a delivery
run (``month must be in 1..12``) nor pin "today" to a date in the future.
"""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

EARLIEST = date(1991, 1, 1)
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
                        r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?")


class BadDay(ValueError):
    """A date that is malformed, not a real calendar day, or outside 1991-01-01 .. tomorrow (UTC)."""


def utc_today() -> date:
    return datetime.now(UTC).date()


def latest_allowed(today: date | None = None) -> date:
    """The latest plausible announcement day: tomorrow, UTC."""
    return (today or utc_today()) + timedelta(days=1)


def _in_range(day: date, text: str, today: date | None) -> None:
    if day < EARLIEST:
        raise BadDay(f"{text!r} is before arXiv's first listings ({EARLIEST.isoformat()})")
    if day > latest_allowed(today):
        raise BadDay(f"{text!r} is in the future")


def announcement_day(value: object, today: date | None = None) -> str:
    """``value`` as a checked ``YYYY-MM-DD`` day; raises :class:`BadDay` naming what is wrong."""
    if not isinstance(value, str):
        raise BadDay(f"expected a YYYY-MM-DD date, got {type(value).__name__}")
    if not _DAY.fullmatch(value):
        raise BadDay(f"{value[:40]!r} is not a YYYY-MM-DD date")
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise BadDay(f"{value!r} is not a calendar date ({exc})") from None
    _in_range(day, value, today)
    return value


def is_announcement_day(value: object, today: date | None = None) -> bool:
    try:
        announcement_day(value, today)
    except BadDay:
        return False
    return True


def timestamp(value: object, today: date | None = None) -> str:
    """An ISO 8601 date or timestamp (``2007-04-02T19:18:42Z``) in the plausible range, returned unchanged."""
    if not isinstance(value, str):
        raise BadDay(f"expected an ISO date or timestamp, got {type(value).__name__}")
    if not _TIMESTAMP.fullmatch(value):
        raise BadDay(f"{value[:40]!r} is not an ISO date or timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadDay(f"{value!r} is not a real date and time ({exc})") from None
    _in_range(parsed.date(), value, today)
    return value
