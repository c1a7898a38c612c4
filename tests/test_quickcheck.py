"""Quick checks: after a digest, one message asks about the one or two papers nearest the user's threshold among
the day's candidates not sent; 👍/👎 there are likes and dislikes; at most one per digest, recorded before it is
sent (no repeat after a restart); off by default in the user's first week, then on unless turned off. Through the
terminal front end and through a delivery run against the fake Bot API server."""
from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from bot.commands import Caller, Commands
from bot.console import Console
from bot.telegram import Deliverer, Runtime, running
from bot.telegram.quickcheck import send_quick_check
from recommender.config import Settings
from recommender.ranking.borderline import borderline
from recommender.ranking.digest import digest_candidates
from recommender.store import Store
from tests.support.bot_fixtures import LATEST, KeywordClassifier, hash_engine, run
from tests.support.fake_telegram import FakeTelegram

LIKED = "2606.28354"


def expected_borderline(commands: Commands, user_id: int) -> list[str]:
    """The two candidates nearest the user's threshold, computed independently of the bot's code path."""
    store = commands.store
    user = store.get_user(user_id)
    cands = digest_candidates(store, user_id, LATEST, user.categories, user.cross_lists)
    recs = commands.engine.recommend(store.liked_ids(user_id), store.disliked_ids(user_id), user.interests,
                                     candidates=cands, n=len(cands))
    return [recs[i].paper.id for i in borderline(
        [r.score if r.similarity is None else r.similarity for r in recs], user.min_score, 2)]


def test_default_is_off_in_the_first_week_then_on_unless_chosen(store: Store) -> None:
    store.ensure_user(5)
    now = datetime.now(UTC)
    assert not store.quickcheck_enabled(5, now) and store.quickcheck_enabled(5, now + timedelta(days=8))
    store.set_quickcheck(5, False)
    assert not store.quickcheck_enabled(5, now + timedelta(days=8))
    store.set_quickcheck(5, True)
    assert store.quickcheck_enabled(5, now) and not store.quickcheck_enabled(404, now)
    assert store.claim_quickcheck(5, LATEST, ["2606.1", "2606.2"])
    assert not store.claim_quickcheck(5, LATEST, ["2606.3"])  # once a digest, whatever happened to the first
    assert store.quickcheck(5, LATEST) == (["2606.1", "2606.2"], "sending")


def test_the_terminal_asks_about_the_borderline_papers_after_a_digest(settings: Settings, demo_store: Store) -> None:
    store = demo_store
    commands = Commands(settings, store, engine_factory=lambda: hash_engine(settings, store),
                        classifier_factory=KeywordClassifier)
    out = io.StringIO()
    console = Console(commands, out=out, echo=True)
    console.run(io.StringIO(f"/start\n/follow cs.LG\n/like {LIKED}\n/settings minscore 0.15\n/settings qc maybe\n"
                            "/settings quickcheck on\n"))
    asked = expected_borderline(commands, 1)
    assert len(asked) == 2
    console.run(io.StringIO("/digest\n1\n/digest\n/settings quickcheck off\n"))
    text = out.getvalue()
    assert "Say on or off" in text and "Quick checks after a digest: on" in text
    digest_at = text.index(f"Your arXiv digest for {LATEST}")
    check_at = text.index("Quick check: would you want these?")
    assert digest_at < check_at and text.count("Quick check: would you want these?") == 1  # once a digest
    assert all(pid in text[check_at:] for pid in asked)
    sent = store.delivered_ids(1, LATEST)
    assert sent and not sent & set(asked)  # papers not sent, never the digest's own
    assert asked[0] in store.liked_ids(1)  # "1" pressed its 👍 1
    assert store.quickcheck(1, LATEST) == (asked, "sending")
    assert "Quick checks after a digest: off" in text[text.rindex("» /settings quickcheck off"):]


def test_a_delivery_run_sends_one_quick_check_after_the_digest_and_never_repeats_it(rt: Runtime,
                                                                                    fake: FakeTelegram) -> None:
    store, week_old, new, refused = rt.store, 8101, 8102, 8103

    async def go() -> None:
        async with running(rt) as app:
            for uid in (week_old, new, refused):
                fake.send_text(uid, "/follow cs.LG")
                fake.send_text(uid, f"/like {LIKED}")
                fake.send_text(uid, "/settings minscore 0.15")
                await fake.replies(uid, 3)
            # a user from last month (quick checks on by default) and one of today's (off)
            store.conn.execute("UPDATE users SET created_at = '2026-05-01T00:00:00Z' WHERE id = ?", (week_old,))
            store.set_quickcheck(refused, False)
            report = await Deliverer(rt, app.bot).run(now=datetime(2026, 6, 30, 8, 0, 30, tzinfo=UTC))
            assert report.sent == 3 and report.failed == 0
            digest, check = (await fake.replies(week_old, 5))[-2:]
            assert digest.text.startswith(f"Your arXiv digest for {LATEST}")
            assert check.text.startswith("Quick check") and check.labels() == ["👍 1", "👎 1", "👍 2", "👎 2"]
            recorded = store.quickcheck(week_old, LATEST)
            assert recorded is not None
            asked, status = recorded
            assert status == "sent" and len(asked) == 2 and not set(asked) & store.delivered_ids(week_old)
            cb = fake.press(week_old, check, check.button("👎 2"))
            assert "Noted" in (await fake.answer_of(cb))["text"]
            assert asked[1] in store.disliked_ids(week_old)
            # a restart: the digest is done and its quick check recorded, so nothing is asked again
            user = store.get_user(week_old)
            assert user is not None
            assert not await send_quick_check(rt, app.bot, user, LATEST, week_old)
            again = await Deliverer(rt, app.bot).run(now=datetime(2026, 6, 30, 9, 0, tzinfo=UTC))
            assert again.due == 0
            assert len(fake.messages(week_old)) == 5
            assert len(fake.messages(new)) == 4 and len(fake.messages(refused)) == 4  # the digest only
            assert store.quickcheck(new, LATEST) is None and store.quickcheck(refused, LATEST) is None
        assert not [e for e in fake.errors if e[1] == 400], fake.errors

    run(go())


def test_a_quick_check_whose_sending_crashed_is_not_asked_again(settings: Settings, demo_store: Store) -> None:
    store = demo_store
    commands = Commands(settings, store, engine_factory=lambda: hash_engine(settings, store),
                        classifier_factory=KeywordClassifier)
    for line in ("/follow cs.LG", f"/like {LIKED}", "/settings minscore 0.15", "/settings quickcheck on"):
        commands.handle(Caller(3, 3), line)
    user = store.get_user(3)
    assert user is not None
    first = commands.quick_check(user, LATEST)
    assert first is not None and len(first.buttons) == 2  # recorded as asked before anything is sent
    assert commands.quick_check(user, LATEST) is None  # after a crash before sending: not asked twice


def test_digest_on_request_in_telegram_is_followed_by_its_quick_check(rt: Runtime, fake: FakeTelegram) -> None:
    uid = 8201

    async def go() -> None:
        async with running(rt):
            for line in ("/follow cs.LG", f"/like {LIKED}", "/settings minscore 0.15", "/settings quickcheck on",
                         "/digest"):
                fake.send_text(uid, line)
            msgs = await fake.replies(uid, 6)
            assert msgs[4].text.startswith(f"Your arXiv digest for {LATEST}")
            assert msgs[5].text.startswith("Quick check")  # after the digest went out and was recorded
            fake.send_text(uid, "/digest")  # the next papers of the same day: no second quick check
            await fake.replies(uid, 7)
        assert not [e for e in fake.errors if e[1] == 400], fake.errors

    run(go())
    recorded = rt.store.quickcheck(uid, LATEST)
    assert recorded is not None and len(recorded[0]) == 2
    assert len(fake.messages(uid)) == 7
