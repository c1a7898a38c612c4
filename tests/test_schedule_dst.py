"""The digest schedule across daylight-saving changes (Europe/Berlin, America/New_York, 2026): the hour that
does not exist in March, the hour that repeats in October/November, and the ordinary hours around them.

A user's digest hour happens once per local date: the first time the local clock shows it, or, on the day
the clock skips it, the moment the clock jumps past it. ``last_mark`` is checked against that rule directly
and for consistency (it never goes back in time, and moves exactly at each mark); ``due`` is driven through
two days around each change every five minutes, as the delivery loop would, and must send one message per
local date, never two, at the first tick at or after the mark.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.schedule import due, last_mark
from recommender.store import User

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
# (zone, local date, UTC moment of the change, the hour that is skipped (March) or repeated (autumn))
SPRING = [(BERLIN, date(2026, 3, 29), datetime(2026, 3, 29, 1, tzinfo=UTC), 2),
          (NEW_YORK, date(2026, 3, 8), datetime(2026, 3, 8, 7, tzinfo=UTC), 2)]
AUTUMN = [(BERLIN, date(2026, 10, 25), datetime(2026, 10, 25, 1, tzinfo=UTC), 2),
          (NEW_YORK, date(2026, 11, 1), datetime(2026, 11, 1, 6, tzinfo=UTC), 1)]


def utc(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def as_utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


# -- last_mark at the exact moments -------------------------------------------------------------------------
@pytest.mark.parametrize("tz,day,change,hour", SPRING)
def test_the_skipped_hour_happens_when_the_clock_jumps(tz: str, day: date, change: datetime, hour: int) -> None:
    before = last_mark(change - timedelta(seconds=1), tz, hour)
    at = last_mark(change, tz, hour)
    assert before.date() == day - timedelta(days=1) and as_utc(before) == change - timedelta(days=1)
    assert at.date() == day and as_utc(at) == change
    assert as_utc(last_mark(change + timedelta(hours=5), tz, hour)) == change
    # the next day the hour exists again, one hour earlier in UTC (summer time)
    assert as_utc(last_mark(change + timedelta(days=1), tz, hour)) == change + timedelta(hours=23)


@pytest.mark.parametrize("tz,day,change,hour", AUTUMN)
def test_the_repeated_hour_counts_once_at_its_first_occurrence(tz: str, day: date, change: datetime,
                                                                hour: int) -> None:
    first, second = change - timedelta(hours=1), change  # local hour:00 in summer time, then in winter time
    z = ZoneInfo(tz)
    assert first.astimezone(z).hour == hour and second.astimezone(z).hour == hour  # the hour really repeats
    for now in (first, first + timedelta(minutes=30), second, second + timedelta(minutes=30),
                second + timedelta(hours=12), change + timedelta(hours=22)):
        mark = last_mark(now, tz, hour)
        assert as_utc(mark) == first and mark.date() == day, now
    assert as_utc(last_mark(first - timedelta(seconds=1), tz, hour)) == first - timedelta(hours=24)
    # the next day: winter time, 25 hours after the first occurrence
    assert as_utc(last_mark(first + timedelta(hours=25), tz, hour)) == first + timedelta(hours=25)


@pytest.mark.parametrize("tz,day,change,hour", SPRING + AUTUMN)
@pytest.mark.parametrize("user_hour", [0, 1, 2, 3, 7, 23])
def test_last_mark_is_consistent_across_the_change(tz: str, day: date, change: datetime, hour: int,
                                                   user_hour: int) -> None:
    """Every minute for two days around the change: the mark is at or before now, shows the user's hour
    (or is the jump past a skipped hour), is the first such moment of its local date, never goes back, and
    moves only at the moment it names."""
    z = ZoneInfo(tz)
    now, end = change - timedelta(hours=26), change + timedelta(hours=26)
    previous: datetime | None = None
    while now <= end:
        mark = as_utc(last_mark(now, tz, user_hour))
        assert mark <= now
        local = mark.astimezone(z)
        assert (local.hour, local.minute, local.second) == (user_hour, 0, 0) or \
            (mark == change and local.hour == user_hour + 1 and day.month == 3), (now, local)
        assert last_mark(now, tz, user_hour).date() == local.date()
        # no earlier moment of the same local date shows the hour (first occurrence)
        assert (mark - timedelta(hours=1)).astimezone(z).date() != local.date() or \
            (mark - timedelta(hours=1)).astimezone(z).hour != user_hour
        if previous is not None:
            assert mark >= previous
            if mark != previous:
                assert mark == now and mark - previous >= timedelta(hours=23), (now, previous, mark)
        previous = mark
        now += timedelta(minutes=1)


# -- due, driven like the delivery loop ---------------------------------------------------------------------
def drive(tz: str, hour: int, start: datetime, end: datetime,
          listings: list[tuple[str, datetime]]) -> list[tuple[datetime, str, str]]:
    """Run ``due`` every five minutes from start to end for one user, with the listings (announcement day,
    first seen) appearing as time passes; returns what was sent after the first tick (which catches up on
    whatever was owed before ``start``, as a bot that had been running would have sent it)."""
    user = User(id=1, chat_id=1, timezone=tz, digest_hour=hour)
    last_days = {1: "2026-01-01"}
    noticed: set[tuple[int, str]] = set()
    sent: list[tuple[datetime, str, str]] = []
    now = start
    while now <= end:
        seen = [(d, t) for d, t in listings if t <= now]
        latest, first_seen = max(seen) if seen else ("2026-01-01", start - timedelta(days=3))
        for d in due([user], now, latest, first_seen, last_days, {1}, noticed):
            if now > start:
                sent.append((now, d.kind, d.day))
            if d.kind == "digest":
                last_days[1] = d.day
            else:
                noticed.add((1, d.day))
        now += timedelta(minutes=5)
    return sent


def one_message_per_local_date(sent: list[tuple[datetime, str, str]], tz: str) -> None:
    dates = [t.astimezone(ZoneInfo(tz)).date() for t, _, _ in sent]
    assert len(dates) == len(set(dates)), sent


@pytest.mark.parametrize("tz,day,change,hour", AUTUMN)
def test_a_listing_seen_in_the_repeated_hour_waits_for_the_next_day(tz: str, day: date, change: datetime,
                                                                    hour: int) -> None:
    """First seen between the two occurrences of the user's hour: that date already had its message (a
    notice: nothing new), so the digest goes out at the hour the next day, not at the second occurrence."""
    first = change - timedelta(hours=1)
    listing = ("2026-12-01", first + timedelta(minutes=30))
    sent = drive(tz, hour, first - timedelta(hours=20), first + timedelta(hours=30), [listing])
    one_message_per_local_date(sent, tz)
    assert sent == [(first, "notice", day.isoformat()),
                    (first + timedelta(hours=25), "digest", "2026-12-01")]


@pytest.mark.parametrize("tz,day,change,hour", SPRING)
def test_a_digest_due_at_the_skipped_hour_goes_out_when_the_clock_jumps(tz: str, day: date, change: datetime,
                                                                        hour: int) -> None:
    listing = ("2026-12-01", change - timedelta(hours=3))
    sent = drive(tz, hour, change - timedelta(hours=2), change + timedelta(hours=30), [listing])
    one_message_per_local_date(sent, tz)
    assert sent[0] == (change, "digest", "2026-12-01")
    assert sent[1:] == [(change + timedelta(hours=23), "notice", (day + timedelta(days=1)).isoformat())]


@pytest.mark.parametrize("tz,day,change,hour", SPRING + AUTUMN)
@pytest.mark.parametrize("user_hour", [1, 2, 3, 8])
def test_one_message_per_local_date_around_the_change(tz: str, day: date, change: datetime, hour: int,
                                                      user_hour: int) -> None:
    """A listing every evening (20:00 New York time, as arXiv announces): each local date gets exactly one
    message, at the first tick at or after that date's mark."""
    ny = ZoneInfo(NEW_YORK)
    listings = [((d + timedelta(days=1)).isoformat(),
                 datetime(d.year, d.month, d.day, 20, tzinfo=ny).astimezone(UTC))
                for d in (day - timedelta(days=k) for k in range(-2, 4))]
    start, end = change - timedelta(hours=30), change + timedelta(hours=40)
    sent = drive(tz, user_hour, start, end, listings)
    one_message_per_local_date(sent, tz)
    for t, _, _ in sent:
        mark = as_utc(last_mark(t, tz, user_hour))
        assert t - mark < timedelta(minutes=5), (t, mark)  # at the first tick after the mark
    z = ZoneInfo(tz)
    marks = {as_utc(last_mark(t, tz, user_hour)) for t in
             (start + timedelta(minutes=5 * k) for k in range(int((end - start) / timedelta(minutes=5)) + 1))}
    marks.discard(as_utc(last_mark(start, tz, user_hour)))  # before the loop started
    assert sorted(m.astimezone(z).date() for m in marks) == sorted(t.astimezone(z).date() for t, _, _ in sent)
