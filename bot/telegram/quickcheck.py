"""The quick check after a scheduled digest: asked once the digest is recorded as sent, at most once a digest.

:meth:`bot.commands.Commands.quick_check` records the question before it is built into a reply, so a crash
between that record and Telegram's answer loses the question rather than repeating it; the outcome (sent,
with its message id, or failed) is recorded afterwards. Nothing here can fail the delivery run.
"""
from __future__ import annotations

import logging

from telegram import Bot
from telegram.error import TelegramError

from bot.telegram.runtime import Runtime
from bot.telegram.sending import send_reply
from recommender.store import User

log = logging.getLogger(__name__)


async def send_quick_check(rt: Runtime, bot: Bot, user: User, day: str, chat_id: int) -> bool:
    """Ask ``user`` about the borderline papers of ``day`` if quick checks are on; True if a message went out."""
    try:
        reply = await rt.call(rt.commands.quick_check, user, day)
        if reply is None:
            return False
        try:
            sent = await send_reply(bot, chat_id, reply)
        except TelegramError as exc:
            log.info("quick check for user %s day %s not sent: %s", user.id, day, exc)
            await rt.call(rt.store.finish_quickcheck, user.id, day, None, False)
            return False
        await rt.call(rt.store.finish_quickcheck, user.id, day, sent[-1].message_id if sent else None)
        return True
    except Exception:
        log.exception("quick check for user %s day %s failed", user.id, day)
        return False
