"""Group chats on Telegram: who speaks for a group, whether a member is one of its admins, and the bot being
added to or removed from a group.

A command in a group, or a press on a button the bot sent there, is answered as the group itself
(:func:`group_caller`: ``Caller(group=True)`` keyed by the group's chat id; see ``bot.cmd_group``). Whether
the member is an admin is asked of Telegram (``getChatMember``: creator or administrator) only when the
command or button changes the group's settings; an anonymous admin, whose messages come "from" the group
itself (``sender_chat``), counts as one. A press in a group the bot was never set up in is refused (the
caller is None), so a forged press cannot create a profile. ``my_chat_member`` updates for groups go to
:func:`group_membership`: removal (left, kicked) stops the group's digests, re-adding resumes them; a group
upgraded to a supergroup keeps its profile under the new chat id (:func:`on_migrate`).
"""
from __future__ import annotations

import contextlib
import logging

from telegram import Bot, ChatMemberUpdated, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.cmd_base import Caller
from bot.cmd_group import needs_admin
from bot.telegram.runtime import Runtime, runtime
from bot.telegram.sending import send_reply

log = logging.getLogger(__name__)

GROUP_TYPES = (ChatType.GROUP, ChatType.SUPERGROUP)
ADMIN_STATUSES = (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)
PRESENT = (ChatMemberStatus.MEMBER, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER,
           ChatMemberStatus.RESTRICTED)


async def is_admin(bot: Bot, update: Update) -> bool:
    """Whether the member behind ``update`` administers its group (an anonymous admin does)."""
    chat, user, msg = update.effective_chat, update.effective_user, update.effective_message
    if chat is None:
        return False
    if msg is not None and msg.sender_chat is not None and msg.sender_chat.id == chat.id:
        return True  # an anonymous admin writes as the group
    if user is None:
        return False
    try:
        member = await bot.get_chat_member(chat.id, user.id)
    except TelegramError as exc:
        log.info("could not check whether user %s administers group %s: %s", user.id, chat.id, exc)
        return False
    return member.status in ADMIN_STATUSES


async def group_caller(bot: Bot, update: Update, check_admin: bool) -> Caller:
    """The group of ``update`` as the caller; ``admin`` is asked of Telegram only when ``check_admin``."""
    chat = update.effective_chat
    assert chat is not None and chat.type in GROUP_TYPES
    admin = await is_admin(bot, update) if check_admin else False
    return Caller(user_id=chat.id, chat_id=chat.id, name=chat.title or "", private=False, group=True, admin=admin)


async def group_press_caller(rt: Runtime, bot: Bot, update: Update, data: str) -> Caller | None:
    """The caller of a button press in a group the bot serves; None anywhere else (not a group, not set up)."""
    chat, query = update.effective_chat, update.callback_query
    if chat is None or chat.type not in GROUP_TYPES or query is None or query.message is None:
        return None
    if not await rt.call(rt.store.is_group, chat.id):
        return None
    return await group_caller(bot, update, needs_admin(data=data))


async def on_migrate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A group upgraded to a supergroup (a new chat id): its profile and digests move to the new id. Telegram
    says it twice (``migrate_to_chat_id`` in the old chat, ``migrate_from_chat_id`` in the new); both work."""
    msg = update.effective_message
    if msg is None:
        return
    if msg.migrate_to_chat_id:
        old, new = msg.chat_id, msg.migrate_to_chat_id
    elif msg.migrate_from_chat_id:
        old, new = msg.migrate_from_chat_id, msg.chat_id
    else:
        return
    rt = runtime(context)
    await rt.call(rt.commands.group_moved, old, new)


async def group_membership(rt: Runtime, bot: Bot, change: ChatMemberUpdated) -> None:
    """The bot was added to or removed from a group: record it (digests stop or resume); greet a new group."""
    present = change.new_chat_member.status in PRESENT
    reply = await rt.call(rt.commands.membership, change.chat.id, change.chat.title or "", present)
    log.info("bot %s group %s", "added to" if present else "removed from", change.chat.id)
    if reply is not None:
        with contextlib.suppress(TelegramError):
            await send_reply(bot, change.chat.id, reply)
