"""The Telegram front end against hostile or odd input: real python-telegram-bot, the fake Bot API server.

An update PTB cannot parse is skipped once (the offset moves past it) instead of stalling polling; a button
press from a group or on an inline message never rebinds a user's chat; a press on a message that is gone
(deleted, or one Telegram no longer shows) gets an answer, not a traceback.
"""
from __future__ import annotations

import logging
from collections import OrderedDict

import pytest
from telegram.error import NetworkError

from bot.telegram import Runtime, running
from bot.telegram.updates import screen_updates
from tests.support.bot_fixtures import run
from tests.support.fake_telegram import FakeTelegram

MALFORMED = {"message": {"message_id": "not a number", "chat": 5, "date": "yesterday"}}


def confirmed(fake: FakeTelegram, update: dict) -> bool:
    """The bot asked for updates past ``update`` (Telegram will not send it again)."""
    return all(u["update_id"] != update["update_id"] for u in fake.pending_updates())


def test_a_malformed_update_is_skipped_once_and_polling_goes_on(rt: Runtime, fake: FakeTelegram,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    uid = 3001
    bad: list[dict] = []

    async def go() -> None:
        async with running(rt):
            alone = fake.inject(dict(MALFORMED))  # the only update of its batch: its id must still be confirmed
            await fake.until(lambda: confirmed(fake, alone), what="the malformed update confirmed")
            fake.send_text(uid, "/help")
            await fake.replies(uid, 1)
            fake.send_text(uid, "/help")
            between = fake.inject(dict(MALFORMED))  # between good updates of one batch
            fake.send_text(uid, "/help")
            await fake.replies(uid, 3)
            await fake.until(lambda: confirmed(fake, between), what="the second malformed update confirmed")
            bad.extend([alone, between])

    run(go())
    skipped = [r for r in caplog.records if "cannot be parsed" in r.getMessage()]
    assert [r.getMessage().split()[2] for r in skipped] == [str(u["update_id"]) for u in bad]
    assert not [r for r in caplog.records if r.levelno >= logging.CRITICAL]  # PTB's "not processed" loop


def test_screening_drops_what_has_no_id_and_refuses_a_non_list() -> None:
    good = {"update_id": 7, "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"},
                                        "text": "hi"}}
    logged: OrderedDict[int, None] = OrderedDict()
    out = screen_updates([{"update_id": "8"}, {"update_id": True}, "junk", good, {"update_id": 9, **MALFORMED}],
                         logged)
    assert out == [good, {"update_id": 9}]
    assert list(logged) == [9]
    with pytest.raises(NetworkError):
        screen_updates({"update_id": 1}, logged)
    with pytest.raises(NetworkError):  # nothing whose id could be confirmed: back off, not a tight loop
        screen_updates(["junk", {"message": {}}], logged)
    assert screen_updates([], logged) == []


def test_a_press_from_a_group_never_moves_a_users_chat(rt: Runtime, fake: FakeTelegram) -> None:
    uid, stranger = 3002, 3102
    group = -uid - 1_000_000  # where fake.send_text(uid, ..., chat_type="group") speaks

    async def go() -> None:
        async with running(rt):
            fake.send_text(uid, "/start", name="Ada")
            [hello] = await fake.replies(uid, 1)
            cs = hello.button("Computer Science")
            forged = fake.press(uid, hello, cs, group=True)
            assert "private chat" in (await fake.answer_of(forged))["text"]
            newcomer = fake.press(stranger, hello, cs, group=True)  # someone who never talked to the bot
            assert "private chat" in (await fake.answer_of(newcomer))["text"]
            intruder = fake.press(stranger, hello, cs)  # a press claiming to be in Ada's private chat
            assert "private chat" in (await fake.answer_of(intruder))["text"]
            fake.send_text(uid, "/settings hour 9", chat_type="group")
            [note] = await fake.replies(group, 1)
            assert "Only the group's admins" in note.text  # the group's own settings; Ada is no admin there
            real = fake.press(uid, hello, cs)  # the user's own chat still works
            await fake.answer_of(real)
            await fake.until(lambda: "cs.LG Machine Learning" in hello.text, what="the category menu")

    run(go())
    user = rt.store.get_user(uid)
    assert user is not None and user.chat_id == uid and user.digest_hour != 9
    assert rt.store.get_user(stranger) is None
    assert [c for c in fake.chats if c < 0] == [group]  # nothing but the note went to any group
    assert fake.messages(uid)[0].edits == 1  # only the private press edited the menu


def test_presses_on_gone_messages_get_an_answer_not_a_traceback(rt: Runtime, fake: FakeTelegram,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    uid = 3003

    async def go() -> None:
        async with running(rt):
            fake.send_text(uid, "/start")
            [hello] = await fake.replies(uid, 1)
            fake.delete(hello)  # the user deleted it; editing it now fails
            deleted = fake.press(uid, hello, hello.button("Computer Science"))
            await fake.answer_of(deleted)
            [menu] = await fake.replies(uid, 1)  # sent anew instead of the edit
            assert "cs.LG" in menu.text and menu.button("cs.LG")
            old = fake.press(uid, menu, menu.button("cs.LG"), inaccessible=True)  # Telegram no longer shows it
            assert "Following cs.LG" in (await fake.answer_of(old))["text"]
            inline = fake.press(uid, menu, menu.button("cs.LG"), inline=True)  # no message, no chat
            assert "private chat" in (await fake.answer_of(inline))["text"]
            fake.send_text(uid, "/help")
            await fake.until(lambda: any("/similar" in t for t in fake.texts(uid)), what="the /help answer")

    run(go())
    assert ("editMessageText", 400, "Bad Request: message to edit not found") in fake.errors
    user = rt.store.get_user(uid)
    assert user is not None and user.categories == ["cs.LG"]  # the press on the inline message changed nothing
    assert not any("went wrong" in t for t in fake.texts(uid))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
