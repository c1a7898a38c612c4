"""Group chats: the bot added to a group serves the group itself, with a profile and digest of its own.

A group speaks to the commands as a :class:`~bot.cmd_base.Caller` with ``group=True`` whose ``user_id`` is the
group's (negative) chat id, so its settings, followed categories, likes and digests live in a ``users`` row of
its own (marked a group in the store), separate from every member's personal profile, and are scheduled and
delivered like anyone's. Everyone's 👍/👎 (buttons or /like) shape the group's profile; changing its settings
or follows (:data:`ADMIN_COMMANDS`, :data:`ADMIN_BUTTONS`) takes a group admin: the front end checks the
member's status (Telegram: getChatMember) only for those, via :func:`needs_admin`, and sets ``Caller.admin``.
``/start`` in a group sets it up; removal from the group stops its digests (:meth:`GroupCommands.membership`)
and re-adding resumes them; a group upgraded to a supergroup keeps everything under its new chat id.
"""
from __future__ import annotations

import logging
import re

from recommender.store import User

from . import buttons as codes
from . import render
from .cmd_base import Caller, CommandsBase
from .reply import Button, Reply
from .rich import Rich

log = logging.getLogger(__name__)

ADMIN_COMMANDS = frozenset({"follow", "unfollow", "interests", "settings", "pause", "resume", "unlike"})
ADMIN_BUTTONS = frozenset({codes.FOLLOW, codes.SETTINGS})
NOT_IN_GROUPS = frozenset({"import", "export"})
ONLY_ADMINS = "Only the group's admins can change its settings and follows; 👍/👎 are open to everyone."


def command_name(text: str) -> str:
    m = re.match(r"^/([A-Za-z0-9_]+)", (text or "").strip())
    return m[1].lower() if m else ""


def needs_admin(text: str = "", data: str | None = None) -> bool:
    """Whether a group message ``text`` (or a button press with ``data``) changes the group's settings, so the
    front end must check that the member is an admin first."""
    if data is not None:
        return data.partition(":")[0] in ADMIN_BUTTONS
    return command_name(text) in ADMIN_COMMANDS


class GroupCommands(CommandsBase):
    def user(self, caller: Caller) -> User:
        """A group's own row (created, marked a group and active again on contact); anyone else as before."""
        if not caller.group:
            return super().user(caller)
        s = self.settings
        gid = caller.user_id
        user = self.store.get_user(gid) or self.store.ensure_user(
            gid, chat_id=gid, name=caller.name or None, timezone=s.digest_timezone, digest_hour=s.digest_hour,
            digest_size=s.digest_size, min_score=s.min_score)
        self.store.add_group(gid, caller.name)
        changes: dict[str, object] = {}
        if not user.active:
            changes["active"] = 1  # it speaks to us, so we are in the group again
        if user.chat_id != gid:
            changes["chat_id"] = gid
        if caller.name and user.name != caller.name:
            changes["name"] = caller.name
        return self.store.update_user(gid, **changes) if changes else user

    def group_gate(self, caller: Caller, user: User, name: str) -> Reply | None:
        """What a group gets instead of running command ``name`` (None: run it): its own /start, a refusal for
        a non-admin's settings change, a pointer to the private chat for personal commands."""
        if not caller.group:
            return None
        if name == "start":
            return self.group_start(user)
        if name in NOT_IN_GROUPS:
            return Reply.plain(f"/{name} works in your private chat with me, for your own likes.")
        if name in ADMIN_COMMANDS and not caller.admin:
            return Reply.plain(ONLY_ADMINS)
        return None

    def group_press_gate(self, caller: Caller, data: str) -> Reply | None:
        if caller.group and needs_admin(data=data) and not caller.admin:
            return Reply(toast=ONLY_ADMINS)
        return None

    def group_start(self, user: User) -> Reply:
        name = render.clean(user.name or "this group", 60)
        out = Rich().b(f"Hi {name}! I'm arxiv-digest.").nl(2)
        out.text("I send this group the day's new arXiv papers that match its interests, at "
                 f"{user.digest_hour:02d}:00 ({user.timezone}), and learn from the group's 👍/👎.").nl(2)
        out.b("Admins set it up:").nl()
        out.text("1. Categories: tap a field below, or ").code("/follow cs.LG").nl()
        out.text("2. Interests: ").code("/interests graph neural networks").nl()
        out.text("3. Hour: ").code("/settings hour 9").text(", ").code("/settings timezone Europe/Berlin").nl(2)
        out.text("Everyone: 👍/👎 under a digest (or ").code("/like ID").text(") shape the group's taste, not "
                                                                             "your own; ")
        out.code("/digest").text(" shows today's. Your personal digest stays in your private chat with me.").nl(2)
        out.extend(self._profile_status(user))
        buttons = [Button(g, codes.field_menu(i)) for i, (g, _) in enumerate(self._groups)]
        return Reply(out, buttons=[buttons[i:i + 2] for i in range(0, len(buttons), 2)])

    def group_moved(self, old: int, new: int) -> None:
        """The group became a supergroup with chat id ``new``: its profile, likes and digests go with it."""
        if self.store.move_group(old, new):
            log.info("group %s is now supergroup %s; its profile moved along", old, new)

    def membership(self, chat_id: int, title: str, present: bool) -> Reply | None:
        """The bot was added to (``present``) or removed from a group: removal stops its digests at once;
        re-adding resumes them. Returns a greeting for a group that is new to the bot."""
        known = self.store.get_user(chat_id) is not None and self.store.is_group(chat_id)
        if not present:
            if known:
                self.store.update_user(chat_id, active=0)
                log.info("removed from group %s: its digests stop", chat_id)
            return None
        if known:
            self.store.update_user(chat_id, active=1)
            log.info("back in group %s: its digests resume", chat_id)
            return None
        out = Rich().text("Thanks for adding me! An admin sends ").code("/start").text(
            " to set up this group's daily arXiv digest.")
        return Reply(out)
