"""Telegram update handlers: each turns an update into a Caller plus text or button data, runs the
transport-free command on the reply pool and renders what comes back. Group chats, edited messages and
non-text messages get a short explanation; a user who blocks the bot is marked inactive.

Handlers that answer are :func:`queued`: python-telegram-bot calls them concurrently, they put the work in
the chat's serial queue (:class:`bot.telegram.runtime.ChatQueues`) and return at once, so a chat's replies
go out in order and one chat's backlog or pacing never delays another chat. A Reply's ``followup`` runs on
the background worker; what it returns is queued for the chat like any other answer.
"""
from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Bot, Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import ContextTypes

from bot.cmd_group import needs_admin
from bot.commands import Caller, Commands, DigestPlan
from bot.reply import Reply, keyboard_equal
from bot.rich import split, to_html
from bot.telegram.delivery import log_digest
from bot.telegram.groups import GROUP_TYPES, group_caller, group_membership, group_press_caller
from bot.telegram.runtime import Runtime, runtime
from bot.telegram.sending import MAX_TEXT, NO_PREVIEW, buttons_of, keyboard, retrying, send_reply

log = logging.getLogger(__name__)
Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]


PRIVATE_BUTTONS = "Buttons work only in your private chat with me."
SLOW_DOWN = Reply.plain("You are sending messages faster than I can answer. I will answer the ones I have; "
                        "please wait for those before sending more.")


def queued(handler: Handler) -> Handler:
    """Run ``handler`` in its chat's serial queue and return at once (see the module docstring); errors go to
    the application's error handler as if the handler had raised them."""

    @functools.wraps(handler)
    async def enqueue(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        if chat is None:  # nothing to answer in order (e.g. a press on an inline message)
            await handler(update, context)
            return
        rt = runtime(context)

        async def work() -> None:
            try:
                await handler(update, context)
            except Exception as exc:
                await context.application.process_error(update, exc)

        async def overflow() -> None:
            with contextlib.suppress(TelegramError):
                await send_reply(context.bot, chat.id, SLOW_DOWN)

        rt.chats.submit(chat.id, work, overflow)

    return enqueue


async def answer(rt: Runtime, bot: Bot, chat_id: int, user_id: int, replies: list[Reply]) -> None:
    for reply in replies:
        plan = reply.delivery if isinstance(reply.delivery, DigestPlan) and reply.delivery.items else None
        if plan is not None:  # recorded before the request, as a delivery run does (see bot.telegram.delivery)
            await rt.call(rt.store.begin_digest, user_id, plan.day, plan.items)
        try:
            sent = await send_reply(bot, chat_id, reply)
        except Forbidden:
            if plan is not None:
                await rt.call(rt.store.abandon_digest, user_id, plan.day, plan.items, "pending")
            await rt.call(rt.store.update_user, user_id, active=0)
            log.info("user %s blocked the bot", user_id)
            return
        except BadRequest:
            if plan is not None:  # refused outright: nothing went out; the delivery run repairs and retries
                await rt.call(rt.store.abandon_digest, user_id, plan.day, plan.items, "pending")
            raise
        if plan is not None and sent:
            await log_digest(rt, user_id, plan, sent[-1].message_id)
        if reply.followup is not None:
            rt.followup(reply.followup, lambda later: rt.chats.submit(
                chat_id, lambda: answer(rt, bot, chat_id, user_id, later), force=True))


def own_chat(update: Update) -> bool:
    """The update comes from the user's private chat with the bot (whose id is, in Telegram, the user's)."""
    user, chat = update.effective_user, update.effective_chat
    return user is not None and chat is not None and chat.type == ChatType.PRIVATE and chat.id == user.id


def caller_of(update: Update) -> Caller:
    """The caller of ``update``; only their private chat with the bot may become where they are answered."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    return Caller(user_id=user.id, chat_id=chat.id, name=user.first_name or "", private=own_chat(update))


@queued
async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt, msg = runtime(context), update.effective_message
    assert msg is not None and msg.text is not None
    caller = caller_of(update)
    replies = await rt.call(rt.commands.handle, caller, msg.text)
    await answer(rt, context.bot, msg.chat_id, caller.user_id, replies)


@queued
async def on_group(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command in a group: answered as the group itself (bot.telegram.groups); admins only for settings."""
    rt, msg = runtime(context), update.effective_message
    assert msg is not None
    addressed = (msg.text or "").split()[0].partition("@")[2] if msg.text else ""
    if addressed and addressed.lower() != (context.bot.username or "").lower():
        return  # a command for another bot in the group
    if update.effective_chat is None or update.effective_chat.type not in GROUP_TYPES:
        await send_reply(context.bot, msg.chat_id, Commands.group_chat())  # a channel
        return
    caller = await group_caller(context.bot, update, needs_admin(msg.text or ""))
    replies = await rt.call(rt.commands.handle, caller, msg.text or "")
    await answer(rt, context.bot, msg.chat_id, caller.user_id, replies)


async def on_membership(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A user blocked (or unblocked) the bot: stop (or resume) their digests at once."""
    change = update.my_chat_member
    if change is not None and change.chat.type in GROUP_TYPES:
        await group_membership(runtime(context), context.bot, change)  # added to or removed from a group
        return
    if change is None or change.chat.type != "private":
        return
    active = change.new_chat_member.status not in ("kicked", "left")
    rt = runtime(context)
    try:
        await rt.call(rt.store.update_user, change.from_user.id, active=int(active))
        log.info("user %s %s the bot", change.from_user.id, "unblocked" if active else "blocked")
    except KeyError:
        pass  # never talked to us


@queued
async def on_edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    msg = update.effective_message
    if msg is not None and msg.chat.type == "private":
        await send_reply(context.bot, msg.chat_id, Commands.edited())


@queued
async def on_other(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    msg = update.effective_message
    assert msg is not None
    kind = "stickers" if msg.sticker else "photos" if msg.photo else "voice messages" if msg.voice else \
        "files" if msg.document else "that kind of message"
    await send_reply(context.bot, msg.chat_id, Commands.unsupported(kind))


@queued
async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt, query = runtime(context), update.callback_query
    assert query is not None
    caller = caller_of(update) if own_chat(update) else \
        await group_press_caller(rt, context.bot, update, query.data or "")  # a group the bot serves
    if caller is None:  # an inline message, or a (forged) press in another group or someone else's chat
        with contextlib.suppress(BadRequest):
            await query.answer(PRIVATE_BUTTONS)
        return
    message = query.message if isinstance(query.message, Message) else None  # None: Telegram no longer shows it
    old = buttons_of(message.reply_markup) if message else []
    replies = await rt.call(rt.commands.press, caller, query.data or "", old)
    first = replies[0] if replies else Reply()
    with contextlib.suppress(BadRequest):  # an answer to an expired query fails harmlessly
        await query.answer(first.toast[:200] or None)
    rest = replies[1:]
    chat_id = message.chat_id if message else update.effective_chat.id if update.effective_chat else None
    if first.edit and message is not None:
        try:
            if first.text:
                html = to_html(split(first.text, MAX_TEXT)[0])
                await retrying(lambda: message.edit_text(html, parse_mode=ParseMode.HTML,
                                                         reply_markup=keyboard(first.buttons),
                                                         link_preview_options=NO_PREVIEW), "editMessageText")
            elif not keyboard_equal(first.buttons, old):
                await retrying(lambda: message.edit_reply_markup(reply_markup=keyboard(first.buttons)),
                               "editMessageReplyMarkup")
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():  # e.g. deleted meanwhile: send it anew (or just the toast)
                log.info("could not edit message %s in chat %s (%s)", message.message_id, message.chat_id, exc)
                if first.text or first.document:
                    rest = replies
    elif first.text or first.document:  # not an edit, or the message is too old to edit: send it anew
        rest = replies
    if rest and chat_id is not None:
        await answer(rt, context.bot, chat_id, caller.user_id, rest)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    where = ""
    if isinstance(update, Update):
        user = update.effective_user
        where = f" (update {update.update_id}, user {user.id if user else '?'})"
    log.error("error handling an update%s", where, exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat and update.effective_chat.type == "private":
        with contextlib.suppress(TelegramError):
            await context.bot.send_message(update.effective_chat.id, "Sorry, something went wrong on my side. "
                                           "It has been logged; please try again in a moment.")
