"""End to end on Telegram: real python-telegram-bot against the fake Bot API server, real SQLite.

A user's whole first day (start, follow from the menu, like, settings, the digest at their hour, buttons,
/similar, /classify, /export), bad input of every kind, long replies, and Telegram's refusals.
"""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.pacing import Pacer
from bot.telegram import Deliverer, Runtime, running
from recommender.store import Store
from tests.support.bot_fixtures import LATEST, ROOT, run
from tests.support.fake_telegram import FakeTelegram


def some_paper(store: Store, day: str = LATEST, category: str = "cs.LG") -> str:
    return store.announced_ids(day, categories=[category])[0]


def test_a_users_first_day(rt: Runtime, fake: FakeTelegram) -> None:
    uid = 1001
    liked = some_paper(rt.store)

    async def day() -> None:
        async with running(rt) as app:
            assert {c["command"] for c in fake.commands} >= {"start", "similar", "classify", "digest", "export"}
            fake.send_text(uid, "/start", name="Ada")
            [hello] = await fake.replies(uid, 1)
            assert "Hi Ada" in hello.text and "/follow" in hello.text
            # follow from the menu: field, then category (the message is edited in place)
            cb = fake.press(uid, hello, hello.button("Computer Science"))
            await fake.answer_of(cb)
            await fake.until(lambda: "cs.LG Machine Learning" in hello.text, what="category menu")
            cb = fake.press(uid, hello, hello.button("cs.LG"))
            assert "Following cs.LG" in (await fake.answer_of(cb))["text"]
            await fake.until(lambda: "✓ cs.LG" in hello.text, what="tick")
            fake.send_text(uid, f"/like https://arxiv.org/abs/{liked}v2")
            [_, like] = await fake.replies(uid, 2)
            assert f"Liked {liked}" in like.text
            fake.send_text(uid, "/settings timezone europe/berlin")
            fake.send_text(uid, "/settings hour 9")
            msgs = await fake.replies(uid, 4)
            assert "09:00 Europe/Berlin" in msgs[-1].text
            assert rt.store.get_user(uid).categories == ["cs.LG"]

            deliverer = Deliverer(rt, app.bot)
            early = await deliverer.run(now=datetime(2026, 6, 30, 6, 30, tzinfo=UTC))  # 08:30 in Berlin
            assert early.due == 0
            report = await deliverer.run(now=datetime(2026, 6, 30, 7, 0, 30, tzinfo=UTC))  # 09:00:30 Berlin
            assert report.sent == 1 and report.failed == 0
            digest = (await fake.replies(uid, 5))[-1]
            assert digest.text.startswith(f"Your arXiv digest for {LATEST}")
            assert "1. " in digest.text and "↳ " in digest.text
            assert all(len(d.encode()) <= 64 for d in digest.callback_data())
            first_id = digest.button("👍 1").split(":", 2)[2]
            assert rt.store.delivered_ids(uid, LATEST)
            # like from the button, twice: the second press changes nothing and breaks nothing
            cb = fake.press(uid, digest, digest.button("👍 1"))
            assert "Liked" in (await fake.answer_of(cb))["text"]
            await fake.until(lambda: "✅ 1" in digest.labels(), what="liked label")
            cb = fake.press(uid, digest, digest.button("✅ 1"))
            assert "already" in (await fake.answer_of(cb))["text"]
            assert first_id in rt.store.liked_ids(uid)
            # more like this
            cb = fake.press(uid, digest, digest.button("🔎 more like 1"))
            similar = (await fake.replies(uid, 6))[-1]
            assert similar.text.startswith(f"Close to {first_id}")
            # the next run sends nothing twice
            again = await deliverer.run(now=datetime(2026, 6, 30, 8, 0, tzinfo=UTC))
            assert again.due == 0
            fake.send_text(uid, f"/classify {liked}")
            cls = (await fake.replies(uid, 7))[-1]
            assert "Categories for" in cls.text and "%" in cls.text
            fake.send_text(uid, "/export")
            msgs = await fake.replies(uid, 9)
            doc = msgs[-1].document
            assert doc is not None and doc[0].endswith(".bib") and b"@misc{" in doc[1]
            assert liked.encode() in doc[1] and first_id.encode() in doc[1]
            # a day without an announcement: told once, not every hour
            quiet = await deliverer.run(now=datetime(2026, 7, 1, 7, 5, tzinfo=UTC))
            assert quiet.notices == 1
            assert "No new arXiv papers" in fake.messages(uid)[-1].text
            later = await deliverer.run(now=datetime(2026, 7, 1, 8, 5, tzinfo=UTC))
            assert later.due == 0
        assert not [e for e in fake.errors if e[1] == 400], fake.errors
        assert fake.rate_violations == 0

    run(day())


def test_identical_edits_and_stale_buttons_are_harmless(rt: Runtime, fake: FakeTelegram) -> None:
    uid = 1500

    async def go() -> None:
        async with running(rt, pacer=Pacer(per_chat_interval=0.4)):
            fake.send_text(uid, "/follow")
            [menu] = await fake.replies(uid, 1)
            first = fake.press(uid, menu, menu.button("Physics"))
            await fake.answer_of(first)
            await fake.until(lambda: menu.edits == 1)
            again = fake.press(uid, menu, "FG:4")  # the same menu again: Telegram says "not modified"
            await fake.answer_of(again)
            await fake.until(lambda: any("not modified" in e[2] for e in fake.errors), what="not modified")
            stale = fake.press(uid, menu, "Q:obsolete")
            assert "older version" in (await fake.answer_of(stale))["text"]
            gone = fake.press(uid, menu, "L:1:2501.99999")  # a paper nobody knows
            assert "no longer know" in (await fake.answer_of(gone))["text"]
            fake.send_text(uid, "/help")
            await fake.replies(uid, 2)
        assert len(fake.messages(uid)) == 2  # no apology messages, no crash
        assert [e for e in fake.errors if e[1] == 400] == [e for e in fake.errors if "not modified" in e[2]]

    run(go())


BAD_INPUTS = [
    ("/like", "Give one or more arXiv ids"),
    ("/like 1234.5", "is not an arXiv id"),
    ("/like 2613.00001", "month 13 does not exist"),
    ("/follow cs.XX", "unknown arXiv category"),
    ("/settings timezone Mars/Olympus", "don't know the timezone"),
    ("/settings hour 24", "0 to 23"),
    ("/settings size 0", "1 to 20"),
    ("/settings colour blue", "no setting"),
    ("/similar", "Give an arXiv id"),
    ("/similar " + "x" * 10_000, "10,000 characters"),
    ("/classify", "Give an arXiv id"),
    ("/interests " + "y" * 600, "under 500"),
    ("/frobnicate", "don't know /frobnicate"),
    ("/likes abc", "whole number"),
    ("/unfollow", "follow no categories"),
]


def test_bad_input_always_gets_a_helpful_reply(rt: Runtime, fake: FakeTelegram) -> None:
    uid = 2002

    async def go() -> None:
        async with running(rt, pacer=Pacer(per_chat_interval=0.4)):
            for k, (text, expected) in enumerate(BAD_INPUTS, 1):
                fake.send_text(uid, text)
                got = (await fake.replies(uid, k))[-1].text
                assert expected.lower() in got.lower(), (text, got)
                assert "Traceback" not in got
            n = len(BAD_INPUTS)
            fake.send_text(uid, "/start@some_other_bot", chat_type="group")
            fake.send_text(uid, "/start", chat_type="group")
            group = await fake.replies(-uid - 1_000_000, 1)
            assert "I send this group" in group[0].text and len(fake.messages(-uid - 1_000_000)) == 1  # set up
            fake.send_text(uid, "/like 1706.03762", edited=True)
            assert "edited" in (await fake.replies(uid, n + 1))[-1].text
            fake.send_sticker(uid)
            assert "stickers" in (await fake.replies(uid, n + 2))[-1].text
            fake.send_text(uid, "hello")
            assert "/help" in (await fake.replies(uid, n + 3))[-1].text
            fake.member_update(uid, "kicked")  # the user blocks the bot: no more digests
            await fake.until(lambda: not rt.store.get_user(uid).active, what="inactive")
            fake.member_update(uid, "member")
            await fake.until(lambda: rt.store.get_user(uid).active, what="active again")
        assert not [e for e in fake.errors if e[1] == 400], fake.errors

    run(go())


def test_long_replies_and_nasty_titles_are_split_and_escaped(rt: Runtime, fake: FakeTelegram) -> None:
    uid = 3003
    nasty = "<script> & *bold* _it_ $x<y$ </b> &amp; a>b"
    rt.store.conn.execute("UPDATE papers SET title = ? || title", (nasty + " ",))

    async def go() -> None:
        async with running(rt, pacer=Pacer(per_chat_interval=0.4)):
            fake.send_text(uid, "/help")
            fake.send_text(uid, "/similar neural networks learning training 20")
            msgs = await fake.replies(uid, 3)
            assert any("<script> & *bold*" in m.text for m in msgs)
            assert all(len(m.text) <= 4096 for m in msgs)
            # 20 results with long titles do not fit one message: split, each piece valid HTML
            fake.send_text(uid, "/follow cs.LG cs.AI cs.CL cs.CV stat.ML")
            for k in range(1, 60):
                rt.store.set_feedback(uid, rt.store.announced_ids(LATEST)[k], 1)
            fake.send_text(uid, "/likes 2")
            await fake.until(lambda: any(m.text.startswith("Your likes") for m in fake.messages(uid)))
        assert not [e for e in fake.errors if e[1] == 400], fake.errors

    run(go())


@pytest.mark.slow
def test_arxiv_digest_run_with_a_token_serves_telegram(tmp_path: Path, fake: FakeTelegram) -> None:
    import os
    import signal
    import subprocess
    import sys
    env = {**os.environ, "ARXIV_DIGEST_HOME": str(tmp_path / "var"), "TELEGRAM_BOT_TOKEN": fake.token,
           "TELEGRAM_API_URL": fake.base_url, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "recommender.cli.main", "run"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        fake.wait_for(lambda: fake.commands, timeout=120, what="setMyCommands")
        fake.send_text(9, "/start")
        fake.wait_messages(9, 1, timeout=300)
        assert "arxiv-digest" in fake.texts(9)[0]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert fake.token not in err and fake.token not in out


def test_a_digest_on_request_is_recorded_around_its_request(rt: Runtime, fake: FakeTelegram) -> None:
    """/digest records its papers before the request (as a delivery run does): refused outright, nothing counts
    as delivered and the next delivery run repairs and sends it; accepted, the papers are delivered."""
    refused, fine = 2001, 2002
    for uid in (refused, fine):
        rt.store.ensure_user(uid, chat_id=uid, digest_hour=12)
        rt.store.set_user_categories(uid, ["cs.LG"])
        rt.store.update_user(uid, interests="language models reasoning", min_score=0.0)
    fake.refuse_html(refused)

    async def go() -> None:
        async with running(rt) as app:
            fake.send_text(fine, "/digest")
            await fake.until(lambda: any(t.startswith("Your arXiv digest") for t in fake.texts(fine)), what="digest")
            await fake.until(lambda: rt.store.digest_status(fine, LATEST) == "sent", what="recorded")
            assert rt.store.delivered_ids(fine, LATEST)
            fake.send_text(refused, "/digest")
            await fake.until(lambda: any("went wrong" in t for t in fake.texts(refused)), what="apology")
            assert not rt.store.delivered_ids(refused, LATEST)
            assert rt.store.digest_status(refused, LATEST) == "pending"
            report = await Deliverer(rt, app.bot).run(now=datetime(2026, 6, 30, 12, 0, 30, tzinfo=UTC))
            assert report.sent >= 1 and report.repaired >= 1
            assert rt.store.delivered_ids(refused, LATEST)
            assert rt.store.digest_status(refused, LATEST) == "sent"

    run(go())
