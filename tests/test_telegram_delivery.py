"""Delivery runs against the fake Bot API: many users in several timezones, a 429 burst, 5xx errors, a blocked
user, and a restart in the middle of a run; nothing is lost and nothing is sent twice."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot.commands import Commands
from bot.pacing import Pacer
from bot.schedule import due, last_mark
from bot.telegram import Deliverer, Runtime, build_application
from recommender.store import Store, User
from tests.support.bot_fixtures import LATEST, hash_engine, run
from tests.support.fake_telegram import FakeTelegram

AT_HOUR = datetime(2026, 6, 30, 12, 0, 30, tzinfo=UTC)


def add_users(store: Store, n: int, start: int = 10_000, tz: str = "UTC", hour: int = 12) -> list[int]:
    ids = list(range(start, start + n))
    for uid in ids:
        store.ensure_user(uid, chat_id=uid, timezone=tz, digest_hour=hour)
        store.set_user_categories(uid, ["cs.LG"])
        # min_score 0: the test embedder's hashed-word cosines run lower than MiniLM's
        store.update_user(uid, interests="language models reasoning", min_score=0.0)
    return ids


def digests_in(fake: FakeTelegram, uid: int) -> int:
    return sum(m.text.startswith("Your arXiv digest") for m in fake.messages(uid))


def test_users_in_different_timezones_get_it_at_their_hour(rt: Runtime, fake: FakeTelegram) -> None:
    tokyo = add_users(rt.store, 1, 1, "Asia/Tokyo", 8)[0]
    berlin = add_users(rt.store, 1, 2, "Europe/Berlin", 8)[0]
    la = add_users(rt.store, 1, 3, "America/Los_Angeles", 8)[0]

    async def go() -> None:
        app = build_application(rt, Pacer(per_chat_interval=0.4))
        async with app:
            d = Deliverer(rt, app.bot)
            # the 2026-06-30 listing was first seen at 00:00 UTC (09:00 Tokyo, 02:00 Berlin, 17:00 LA the eve)
            r = await d.run(now=datetime(2026, 6, 30, 6, 0, 30, tzinfo=UTC))  # 08:00 Berlin
            assert r.sent == 1 and digests_in(fake, berlin) == 1
            r = await d.run(now=datetime(2026, 6, 30, 15, 0, 30, tzinfo=UTC))  # 08:00 LA
            assert r.sent == 1 and digests_in(fake, la) == 1
            assert digests_in(fake, tokyo) == 0  # Tokyo's 08:00 came before the announcement
            r = await d.run(now=datetime(2026, 6, 30, 23, 0, 30, tzinfo=UTC))  # 08:00 Tokyo, next day
            assert r.sent == 1 and digests_in(fake, tokyo) == 1
            assert (await d.run(now=datetime(2026, 6, 30, 23, 30, tzinfo=UTC))).due == 0

    run(go())


def test_a_429_burst_during_delivery_loses_nothing(rt: Runtime, fake: FakeTelegram) -> None:
    users = add_users(rt.store, 40)
    fake.fail("sendMessage", status=429, times=6, retry_after=1)

    async def go() -> None:
        app = build_application(rt)
        async with app:
            report = await Deliverer(rt, app.bot).run(now=AT_HOUR)
        assert report.sent == 40 and report.failed == 0, report
        assert all(digests_in(fake, u) == 1 for u in users)
        assert sum(1 for e in fake.errors if e[1] == 429) >= 6

    run(go())


def test_5xx_and_a_blocked_user(rt: Runtime, fake: FakeTelegram) -> None:
    users = add_users(rt.store, 10)
    fake.block(users[3])
    fake.fail("sendMessage", status=502, times=3)

    async def go() -> None:
        app = build_application(rt)
        async with app:
            report = await Deliverer(rt, app.bot).run(now=AT_HOUR)
            assert report.sent == 9 and report.blocked == 1 and report.failed == 0, report
            assert rt.store.get_user(users[3]).active is False
            assert all(digests_in(fake, u) == 1 for u in users if u != users[3])
            # the blocked user is skipped from now on, until they write again
            assert (await Deliverer(rt, app.bot).run(now=AT_HOUR)).due == 0

    run(go())


def test_a_timeout_is_retried(rt: Runtime, fake: FakeTelegram) -> None:
    users = add_users(rt.store, 3)
    fake.fail("sendMessage", delay=1.5, times=1)

    async def go() -> None:
        app = build_application(rt, timeout=0.5)
        async with app:
            report = await Deliverer(rt, app.bot).run(now=AT_HOUR)
        assert report.sent == 3 and report.failed == 0, report
        assert [digests_in(fake, u) for u in users] == [1, 1, 1]

    run(go())


def test_restart_in_the_middle_of_a_run_sends_nothing_twice(rt: Runtime, fake: FakeTelegram) -> None:
    users = add_users(rt.store, 30)

    async def go() -> None:
        app = build_application(rt, Pacer(overall_rate=20))
        async with app:
            task = asyncio.ensure_future(Deliverer(rt, app.bot, concurrency=4).run(now=AT_HOUR))
            await fake.until(lambda: sum(len(fake.chats.get(u, [])) for u in users) >= 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        first = sum(digests_in(fake, u) for u in users)
        assert 10 <= first < 30
        # "restart": a new application and runtime over the same database
        store2 = Store(rt.settings.db_path, taxonomy=rt.settings.taxonomy_path)
        rt2 = Runtime(rt.settings, store2,
                      Commands(rt.settings, store2, engine_factory=lambda: hash_engine(rt.settings, store2)))
        app2 = build_application(rt2)
        async with app2:
            report = await Deliverer(rt2, app2.bot).run(now=AT_HOUR)
        rt2.close()
        assert report.sent == 30 - first
        assert [digests_in(fake, u) for u in users] == [1] * 30

    run(go())


def test_due_logic_without_a_clock() -> None:
    u = User(id=1, chat_id=1, timezone="Europe/Berlin", digest_hour=7)
    seen = datetime(2026, 6, 30, 0, 5, tzinfo=UTC)
    assert last_mark(datetime(2026, 6, 30, 4, 59, tzinfo=UTC), "Europe/Berlin", 7).hour == 7
    before = due([u], datetime(2026, 6, 30, 4, 59, tzinfo=UTC), LATEST, seen, {}, {1}, set())
    at = due([u], datetime(2026, 6, 30, 5, 0, tzinfo=UTC), LATEST, seen, {}, {1}, set())
    assert before == [] and [d.kind for d in at] == ["digest"]
    assert due([u], datetime(2026, 6, 30, 5, 0, tzinfo=UTC), LATEST, seen, {}, set(), set()) == []  # no profile
    paused = User(id=1, chat_id=1, paused=True)
    assert due([paused], datetime(2026, 7, 3, tzinfo=UTC), LATEST, seen, {}, {1}, set(), force=True) == []
    # Friday: nothing new since Thursday's digest -> one notice for that local date
    fri = datetime(2026, 7, 3, 5, 30, tzinfo=UTC)
    notice = due([u], fri, LATEST, seen, {1: LATEST}, {1}, set())
    assert [(d.kind, d.day) for d in notice] == [("notice", "2026-07-03")]
    assert due([u], fri, LATEST, seen, {1: LATEST}, {1}, {(1, "2026-07-03")}) == []
