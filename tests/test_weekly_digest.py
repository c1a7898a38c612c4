"""Weekly digests: the weekly mark and the days a digest covers, who is due when, the setting in both front ends,
the batched ranking over a week, and delivery through the fake Bot API server with no paper ever sent twice
across daily/weekly switches."""
from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from bot.commands import Commands
from bot.console import Console
from bot.render import numbered_ids
from bot.reply import Button
from bot.schedule import Due, covered_days, due, last_weekly_mark
from bot.telegram import Deliverer, Runtime, running
from recommender.config import Settings
from recommender.store import Store, User
from recommender.store.follows import split_name
from tests.support.bot_fixtures import LATEST, KeywordClassifier, hash_engine, run
from tests.support.fake_telegram import FakeTelegram, Sent

WEEK = ("2026-06-24", "2026-06-25", "2026-06-26", "2026-06-29", "2026-06-30")  # the demo's last week
TUESDAY = 1  # LATEST, 2026-06-30, is a Tuesday
AT_NINE = datetime(2026, 6, 30, 9, 0, 30, tzinfo=UTC)


def test_the_weekly_mark() -> None:
    assert last_weekly_mark(AT_NINE, "UTC", 9, TUESDAY) == datetime(2026, 6, 30, 9, tzinfo=UTC)
    assert last_weekly_mark(datetime(2026, 6, 30, 8, 59, tzinfo=UTC), "UTC", 9, TUESDAY) == \
        datetime(2026, 6, 23, 9, tzinfo=UTC)
    assert last_weekly_mark(AT_NINE, "UTC", 9, 0) == datetime(2026, 6, 29, 9, tzinfo=UTC)  # Monday
    tokyo = last_weekly_mark(AT_NINE, "Asia/Tokyo", 8, TUESDAY)  # 08:00 Tokyo = 23:00 UTC on Monday
    assert tokyo.astimezone(UTC) == datetime(2026, 6, 29, 23, tzinfo=UTC) and tokyo.weekday() == TUESDAY


def test_the_days_a_weekly_digest_covers() -> None:
    days = ["2026-06-19", "2026-06-23", *WEEK]
    assert covered_days(days, LATEST, None) == WEEK  # a week back at most: not the 23rd, 7 days before
    assert covered_days(days, LATEST, "2026-06-26") == ("2026-06-29", LATEST)
    assert covered_days(days, LATEST, "2026-06-29") == (LATEST,)
    assert covered_days([], LATEST, None) == (LATEST,)


def test_who_is_due_when() -> None:
    weekly = User(1, chat_id=1, digest_hour=9, digest_weekday=TUESDAY)
    daily = User(2, chat_id=2, digest_hour=9)
    seen = datetime(2026, 6, 30, 0, 0, tzinfo=UTC)

    def at(users: list[User], now: datetime, last_days: dict[int, str], force: bool = False) -> list[Due]:
        return due(users, now, LATEST, seen, last_days, {1, 2}, set(), force=force, announced=WEEK)

    assert at([weekly, daily], datetime(2026, 6, 29, 9, 0, 30, tzinfo=UTC), {2: "2026-06-26"}) == []
    tuesday = at([weekly, daily], AT_NINE, {2: "2026-06-29"})
    assert [(d.user.id, d.kind, d.day, d.days) for d in tuesday] == [(1, "digest", LATEST, WEEK),
                                                                     (2, "digest", LATEST, ())]
    after = at([weekly], AT_NINE, {1: "2026-06-26"})
    assert after[0].days == ("2026-06-29", LATEST)
    # had it: nothing due, and never a "no announcement" notice for a weekly user
    for when in (AT_NINE, datetime(2026, 7, 1, 9, 0, 30, tzinfo=UTC), datetime(2026, 7, 7, 9, 0, 30, tzinfo=UTC)):
        assert at([weekly], when, {1: LATEST}) == []
    forced = at([weekly], datetime(2026, 7, 1, 3, tzinfo=UTC), {}, force=True)
    assert forced[0].days == WEEK


def test_the_setting_in_the_terminal(settings: Settings, demo_store: Store) -> None:
    out = io.StringIO()
    console = Console(Commands(settings, demo_store, engine_factory=lambda: hash_engine(settings, demo_store),
                               classifier_factory=KeywordClassifier), out=out, echo=True)
    console.run(io.StringIO("/settings frequency weekly fri\n"))
    assert demo_store.get_user(1).digest_weekday == 4
    assert "Digest weekly on Fridays at 08:00 UTC" in out.getvalue()
    for line, weekday in [("/settings weekly monday", 0), ("/settings frequency daily", None),
                          ("/settings frequency weekly", 0), ("/settings freq Weekly on Sundays", 6),
                          ("/settings frequency every day", None)]:
        console.run(io.StringIO(line + "\n"))
        assert demo_store.get_user(1).digest_weekday == weekday, line
    console.run(io.StringIO("/settings frequency weekly blursday\n/settings frequency hourly\n"))
    assert out.getvalue().count("Say daily, or weekly and a weekday") == 2
    assert demo_store.get_user(1).digest_weekday is None
    # /digest of a weekly user covers the week so far
    console.run(io.StringIO("/follow cs.LG\n/settings weekly tuesday\n/digest\n/pause\n/resume\n"))
    assert f"Your weekly arXiv digest, 2026-06-24 to {LATEST}" in out.getvalue()
    assert "Digests on again on Tuesdays, at 08:00 UTC" in out.getvalue()


def test_batched_weekly_digests_equal_one_by_one(settings: Settings, demo_store: Store) -> None:
    store = demo_store
    engine = hash_engine(settings, store)
    early = store.announced_ids("2026-06-29", categories=["cs.LG"])
    author = store.get_papers([early[0]])[early[0]].authors[0]
    store.ensure_user(1, chat_id=1, min_score=0.0, digest_size=8, digest_weekday=TUESDAY)
    store.set_user_categories(1, ["cs.LG"])
    store.set_feedback(1, "2606.28354", 1)
    store.follow_author(1, author)
    store.ensure_user(2, chat_id=2, digest_weekday=0)
    store.add_alert(2, "cathetus rule")
    store.ensure_user(3, chat_id=3, digest_size=5, digest_weekday=TUESDAY)
    store.set_user_categories(3, ["cs.CL"])
    batched = engine.digests([1, 2, 3], LATEST, days=WEEK)
    for uid in (1, 2, 3):
        single = engine.digest(uid, LATEST, days=WEEK)
        assert [(r.paper.id, r.why) for r in batched[uid]] == [(r.paper.id, r.why) for r in single], uid
        assert [r.score for r in batched[uid]] == pytest.approx([r.score for r in single], abs=1e-5)
    assert "whom you follow" in {r.paper.id: r.why for r in batched[1]}[early[0]]
    assert len(batched[1]) == 8 and [r.paper.id for r in batched[2]] == ["2606.28851"]
    days = {p.announced for p in (r.paper for r in batched[3])}
    assert days <= set(WEEK) and len(batched[3]) == 5


def full_named_author(store: Store, day: str) -> tuple[str, str]:
    """(paper id, author) of a paper of ``day`` whose author's name is written out (not initials only)."""
    for pid in store.announced_ids(day, categories=["cs.LG"]):
        for name in store.get_papers([pid])[pid].authors:
            if any(len(w) > 2 for w in split_name(name)[0]):
                return pid, name
    raise AssertionError("no such author")


def _digest_papers(messages: list[Sent]) -> list[set[str]]:
    """The paper ids of each digest among ``messages``, read from their like buttons."""
    out = []
    for m in messages:
        if "arXiv digest" in m.text:
            out.append({pid for _, pid in numbered_ids([[Button("x", d)] for d in m.callback_data() if d])})
    return out


def test_weekly_delivery_on_telegram_and_no_repeats_across_switches(rt: Runtime, fake: FakeTelegram) -> None:
    weekly, switcher = 3001, 3002
    store = rt.store
    _, author = full_named_author(store, "2026-06-29")
    for uid in (weekly, switcher):
        store.ensure_user(uid, chat_id=uid, digest_hour=9, min_score=0.0, digest_size=10)
        store.set_user_categories(uid, ["cs.LG"])
        store.update_user(uid, interests="language models and reasoning")

    async def go() -> None:
        async with running(rt) as app:
            fake.send_text(weekly, "/settings frequency weekly tuesday")
            fake.send_text(weekly, f"/follow author {author}")
            msgs = await fake.replies(weekly, 2)
            assert "weekly on Tuesdays at 09:00 UTC" in msgs[0].text and "Following" in msgs[1].text
            # the switcher had the 29th as a daily digest, then goes weekly
            plan = await rt.call(rt.commands.build_digest, store.get_user(switcher), "2026-06-29")
            assert plan.items
            await rt.call(store.record_digest, switcher, "2026-06-29", plan.items)
            fake.send_text(switcher, "/settings weekly tue")
            await fake.replies(switcher, 1)
            d = Deliverer(rt, app.bot)
            monday = await d.run(now=datetime(2026, 6, 29, 9, 0, 30, tzinfo=UTC))
            assert monday.due == 0
            tuesday = await d.run(now=AT_NINE)
            assert tuesday.sent == 2 and tuesday.failed == 0
            digest = (await fake.replies(weekly, 3))[-1]
            assert digest.text.startswith(f"Your weekly arXiv digest, 2026-06-24 to {LATEST}")
            assert f"by {author}, whom you follow" in digest.text
            assert store.digest_status(weekly, LATEST) == "sent" and store.last_digest_day(weekly) == LATEST
            first = (await fake.replies(switcher, 2))[-1]
            assert first.text.startswith(f"Your arXiv digest for {LATEST}")  # only the day after its last
            assert not {pid for pid, _, _ in plan.items} & _digest_papers([first])[0]
            for when in (datetime(2026, 7, 1, 9, 0, 30, tzinfo=UTC), datetime(2026, 7, 7, 9, 0, 30, tzinfo=UTC)):
                assert (await d.run(now=when)).due == 0  # nothing new since: no digest, no notice
            # back to daily, and /digest: whatever comes is new to them
            fake.send_text(weekly, "/settings frequency daily")
            fake.send_text(weekly, "/digest")
            msgs = await fake.replies(weekly, 5)
            assert "Digest at 09:00 UTC" in msgs[3].text
            sets = _digest_papers(fake.messages(weekly))
            assert len(sets) >= 1 and all(not a & b for k, a in enumerate(sets) for b in sets[k + 1:])
            # /digest is recorded once Telegram answered it (status 'sending' until then)
            await fake.until(lambda: store.digest_status(weekly, LATEST) == "sent", what="/digest recorded")
            quiet = await d.run(now=datetime(2026, 7, 1, 9, 0, 30, tzinfo=UTC))
            assert quiet.sent == 0
        assert not [e for e in fake.errors if e[1] == 400], fake.errors

    run(go())
