"""Sending Replies to Telegram: HTML with every span escaped, texts split at 4096 characters, inline keyboards,
documents, and retries of transient Bot API errors (5xx, timeouts, leftover 429s) with backoff.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter

from bot.pacing import retry_seconds
from bot.reply import Button, Reply
from bot.rich import split, to_html

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_TEXT = 4096
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


def keyboard(buttons: list[list[Button]]) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup([
        [InlineKeyboardButton(b.label, url=b.url) if b.url else InlineKeyboardButton(b.label, callback_data=b.data)
         for b in row] for row in buttons if row])


def buttons_of(markup: InlineKeyboardMarkup | None) -> list[list[Button]]:
    if markup is None:
        return []
    rows = []
    for row in markup.inline_keyboard:
        cells = []
        for b in row:
            if isinstance(b.callback_data, str) or b.url:
                cells.append(Button(b.text, b.callback_data if isinstance(b.callback_data, str) else "",
                                    b.url or ""))
        rows.append(cells)
    return rows


async def retrying(make: Callable[[], Awaitable[T]], what: str, attempts: int = 4) -> T:
    """Run a Bot API call, retrying 5xx errors, timeouts and leftover 429s with backoff."""
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            return await make()
        except (BadRequest, Forbidden):
            raise
        except RetryAfter as exc:
            if attempt == attempts:
                raise
            await asyncio.sleep(retry_seconds(exc) + 0.1)
        except NetworkError as exc:  # includes TimedOut and 5xx
            if attempt == attempts:
                raise
            log.info("%s failed (%s); retry %d in %.1fs", what, exc, attempt, delay)
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


async def send_reply(bot: Bot, chat_id: int, reply: Reply) -> list[Message]:
    """Send a Reply as one or more messages (text split at 4096, keyboard on the last), plus its document."""
    sent: list[Message] = []
    pieces = split(reply.text, MAX_TEXT) if reply.text else []
    for k, piece in enumerate(pieces):
        markup = keyboard(reply.buttons) if k == len(pieces) - 1 else None
        sent.append(await retrying(functools.partial(
            bot.send_message, chat_id, to_html(piece), parse_mode=ParseMode.HTML, reply_markup=markup,
            link_preview_options=NO_PREVIEW), "sendMessage"))
    if reply.document is not None:
        doc = reply.document
        sent.append(await retrying(lambda: bot.send_document(
            chat_id, document=doc.content, filename=doc.filename, caption=doc.caption or None), "sendDocument"))
    if not pieces and reply.document is None and reply.buttons:
        sent.append(await retrying(lambda: bot.send_message(
            chat_id, "Choose:", reply_markup=keyboard(reply.buttons)), "sendMessage"))
    return sent
