"""Group digests: the bot added to a group serves the group, with a profile of its own that only admins configure
and every member's 👍/👎 shape; its digest goes to the group at the group's hour, and removal from the group
stops deliveries until it is added again. Through real python-telegram-bot against the fake Bot API server, and
through the terminal front end speaking as a group."""
from __future__ import annotations

import io
from datetime import UTC, datetime

from bot.commands import Caller, Commands
from bot.console import Console
from bot.telegram import Deliverer, Runtime, running
from recommender.config import Settings
from recommender.store import Store
from tests.support.bot_fixtures import LATEST, KeywordClassifier, hash_engine, run
from tests.support.fake_telegram import FakeTelegram

GROUP = -1_001_234_567_890  # a supergroup's chat id
ADMIN, MEMBER = 7001, 7002


def test_a_group_is_set_up_by_admins_shaped_by_everyone_and_served_at_its_hour(rt: Runtime,
                                                                               fake: FakeTelegram) -> None:
    store = rt.store
    liked = store.announced_ids(LATEST, categories=["cs.LG"])[0]

    async def go() -> None:
        async with running(rt) as app:
            fake.admins[GROUP].add(ADMIN)
            fake.group_member_update(GROUP, "member", ADMIN)  # added to the group
            [hello] = await fake.replies(GROUP, 1)
            assert "An admin sends /start" in hello.text
            fake.send_group_text(GROUP, MEMBER, "/follow@arxiv_digest_bot cs.LG")
            refused = (await fake.replies(GROUP, 2))[-1]
            assert "Only the group's admins" in refused.text
            fake.send_group_text(GROUP, ADMIN, "/start@arxiv_digest_bot")
            start = (await fake.replies(GROUP, 3))[-1]
            assert "I send this group" in start.text and start.button("Computer Science")
            fake.send_group_text(GROUP, ADMIN, "/follow cs.LG")
            fake.send_group_text(GROUP, 0, "/settings timezone Europe/Berlin", anonymous_admin=True)
            fake.send_group_text(GROUP, ADMIN, "/settings hour 9")
            fake.send_group_text(GROUP, MEMBER, f"/like@arxiv_digest_bot {liked}")  # anyone shapes its taste
            fake.send_group_text(GROUP, MEMBER, "/start@some_other_bot")  # not for us: no answer
            msgs = await fake.replies(GROUP, 7)
            assert "Following cs.LG" in msgs[3].text and "09:00 Europe/Berlin" in msgs[5].text
            assert f"Liked {liked}" in msgs[6].text
            # a member may browse the menu but not change the group's follows
            cb = fake.press(MEMBER, start, start.button("Computer Science"))
            await fake.answer_of(cb)
            await fake.until(lambda: "cs.LG Machine Learning" in start.text, what="the category menu")
            cb = fake.press(MEMBER, start, start.button("✓ cs.LG"))
            assert "Only the group's admins" in (await fake.answer_of(cb))["text"]

            deliverer = Deliverer(rt, app.bot)
            fake.group_member_update(GROUP, "left", ADMIN)  # removed: no digest at its hour
            await fake.until(lambda: not store.get_user(GROUP).active, what="the group inactive")
            gone = await deliverer.run(now=datetime(2026, 6, 30, 7, 0, 30, tzinfo=UTC))  # 09:00:30 in Berlin
            assert gone.due == 0
            fake.group_member_update(GROUP, "member", ADMIN)  # added again: deliveries resume
            await fake.until(lambda: store.get_user(GROUP).active, what="the group active again")
            early = await deliverer.run(now=datetime(2026, 6, 30, 6, 30, tzinfo=UTC))
            assert early.due == 0
            report = await deliverer.run(now=datetime(2026, 6, 30, 7, 0, 30, tzinfo=UTC))
            assert report.sent == 1 and report.failed == 0
            digest = (await fake.replies(GROUP, 8))[-1]
            assert digest.text.startswith(f"Your arXiv digest for {LATEST}")
            first = digest.button("👍 1").split(":", 2)[2]
            cb = fake.press(MEMBER, digest, digest.button("👎 1"))  # a member's press shapes the group
            assert "Noted" in (await fake.answer_of(cb))["text"]
            assert first in store.disliked_ids(GROUP)
            fake.send_group_text(GROUP, MEMBER, "/digest@arxiv_digest_bot")
            again = (await fake.replies(GROUP, 9))[-1]
            assert again.text.startswith(f"Your arXiv digest for {LATEST}") or "already" in again.text
        assert not [e for e in fake.errors if e[1] == 400], fake.errors

    run(go())
    group = store.get_user(GROUP)
    assert group is not None and store.is_group(GROUP) and group.chat_id == GROUP and group.active
    assert group.categories == ["cs.LG"] and group.digest_hour == 9 and group.timezone == "Europe/Berlin"
    assert liked in store.liked_ids(GROUP) and store.delivered_ids(GROUP, LATEST)
    # the members' own profiles are untouched: nobody talked to the bot in private
    assert store.get_user(ADMIN) is None and store.get_user(MEMBER) is None
    assert not [c for c in fake.chats if c > 0]


def test_the_terminal_speaks_as_a_group(settings: Settings, demo_store: Store) -> None:
    store = demo_store
    commands = Commands(settings, store, engine_factory=lambda: hash_engine(settings, store),
                        classifier_factory=KeywordClassifier)
    member, admin = io.StringIO(), io.StringIO()
    Console(commands, out=member, echo=True, caller=Caller(-500, -500, "Lab", private=False, group=True)).run(
        io.StringIO("/start\n/follow cs.LG\n/settings hour 7\n/import library.bib\n/pause\n"))
    text = member.getvalue()
    assert "Hi Lab!" in text and "I send this group" in text
    assert text.count("Only the group's admins") == 3 and "/import works in your private chat" in text
    assert store.get_user(-500).categories == [] and store.is_group(-500)
    Console(commands, out=admin, echo=True,
            caller=Caller(-500, -500, "Lab", private=False, group=True, admin=True)).run(
        io.StringIO("/follow cs.LG\n/settings hour 7\n/digest\n"))
    text = admin.getvalue()
    assert "Following cs.LG" in text and "07:00" in text and f"Your arXiv digest for {LATEST}" in text
    group = store.get_user(-500)
    assert group.categories == ["cs.LG"] and group.digest_hour == 7 and group.chat_id == -500
    assert store.delivered_ids(-500, LATEST) and store.get_user(1) is None


def test_a_group_upgraded_to_a_supergroup_keeps_its_profile(rt: Runtime, fake: FakeTelegram) -> None:
    small, big = -4_242, -1_000_000_004_242
    store = rt.store
    liked = store.announced_ids(LATEST, categories=["cs.LG"])[0]

    def migrated(chat: dict, **field: int) -> dict:
        return {"message": {"message_id": 1, "date": int(datetime.now(UTC).timestamp()), "chat": chat,
                            "from": {"id": ADMIN, "is_bot": False, "first_name": "Ada"}, **field}}

    async def go() -> None:
        async with running(rt):
            fake.owners[small] = ADMIN  # the group's creator
            fake.send_group_text(small, ADMIN, "/follow cs.LG")
            fake.send_group_text(small, MEMBER, f"/like {liked}")
            await fake.replies(small, 2)
            # Telegram says it in both chats; the first moves everything, the second changes nothing
            fake.inject(migrated({"id": small, "type": "group", "title": "Reading group"}, migrate_to_chat_id=big))
            fake.inject(migrated({"id": big, "type": "supergroup", "title": "Reading group"},
                                 migrate_from_chat_id=small))
            await fake.until(lambda: store.get_user(big) is not None, what="the group moved")
            fake.send_group_text(big, MEMBER, "/start")
            [hello] = await fake.replies(big, 1)
            assert "Following: cs.LG" in hello.text and "Liked papers: 1" in hello.text

    run(go())
    assert store.get_user(small) is None and store.is_group(big) and store.liked_ids(big) == [liked]
    assert store.get_user(big).categories == ["cs.LG"] and store.get_user(big).chat_id == big
