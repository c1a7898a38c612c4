"""Every bot command as a plain function from (caller, arguments) to Replies; no chat service in sight.

:class:`Commands` puts the command groups together (``cmd_papers``: likes, export, similar, classify;
``cmd_profile``: categories, interests, settings; ``cmd_digest``: digests; all on ``cmd_base``, which holds
the store and, loaded on first use, the recommender engine and the classifier) and dispatches to them:
``handle(caller, text)`` runs one line a user typed (a ``/command`` or free text) and ``press(caller, data,
buttons)`` one button press. Bad input of any kind gets a short reply that says what to do instead; an
unexpected error is logged with its context and answered with an apology, never a traceback. Front ends
(``bot.telegram``, ``bot.console``) only render what comes back.
"""
from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass

from recommender.ids import InvalidArxivId, parse_arxiv_id
from recommender.store import User

from . import buttons as codes
from . import render
from .cmd_base import MAX_ARG_CHARS, Caller, UserError
from .cmd_digest import DigestCommands, DigestPlan
from .cmd_group import GroupCommands
from .cmd_import import ImportCommands
from .cmd_papers import PaperCommands
from .cmd_profile import ProfileCommands, parse_timezone
from .cmd_quickcheck import QuickCheckCommands
from .inputs import has_words
from .reply import Button, Reply
from .rich import Rich

log = logging.getLogger(__name__)

__all__ = ["COMMANDS", "Caller", "CommandInfo", "Commands", "DigestPlan", "UserError", "parse_timezone"]

@dataclass(frozen=True)
class CommandInfo:
    name: str
    summary: str
    example: str


COMMANDS: tuple[CommandInfo, ...] = (
    CommandInfo("start", "what I do and a one-minute set-up", "/start"),
    CommandInfo("follow", "follow arXiv categories (/follow cs.LG astro-ph.GA; no argument: a menu, your authors "
                "and suggestions) or an author, whose new papers are then always in your digest",
                "/follow author Claudio Bonanno"),
    CommandInfo("unfollow", "stop following categories or an author", "/unfollow author Claudio Bonanno"),
    CommandInfo("alert", "papers whose title or abstract has a phrase are always in your digest",
                "/alert cathetus rule"),
    CommandInfo("alerts", "your alerts", "/alerts"),
    CommandInfo("unalert", "remove an alert (by phrase or number)", "/unalert cathetus rule"),
    CommandInfo("interests", "describe your interests in a sentence (- to clear)",
                "/interests graph neural networks for molecules"),
    CommandInfo("like", "like papers by id or link", "/like 1706.03762 https://arxiv.org/abs/2005.14165"),
    CommandInfo("dislike", "tell me a paper is not for you", "/dislike 2101.00001"),
    CommandInfo("unlike", "forget a like or dislike", "/unlike 1706.03762"),
    CommandInfo("likes", "the papers you liked, 10 a page", "/likes 2"),
    CommandInfo("export", "your liked papers as a BibTeX file", "/export"),
    CommandInfo("import", "like every paper of your library: send a BibTeX, RIS or id-list file (terminal: a path)",
                "/import library.bib"),
    CommandInfo("similar", "papers close to an id, a link or any text; optional count", "/similar 1706.03762 5"),
    CommandInfo("classify", "arXiv categories for a paper or a title (blank line, then abstract)",
                "/classify Attention is all you need"),
    CommandInfo("digest", "today's digest, now", "/digest"),
    CommandInfo("settings", "digest hour, timezone, size, minimum score, cross-lists, quick checks, pause",
                "/settings timezone Europe/Berlin"),
    CommandInfo("pause", "stop daily digests (/resume to restart)", "/pause"),
    CommandInfo("resume", "restart daily digests", "/resume"),
    CommandInfo("help", "this list", "/help"),
)
COMMAND_NAMES = {c.name for c in COMMANDS}


class Commands(ImportCommands, GroupCommands, QuickCheckCommands, PaperCommands, ProfileCommands, DigestCommands):
    """Every command; ``handle`` and ``press`` dispatch to them. Thread-confined like its base."""

    def handle(self, caller: Caller, text: str) -> list[Reply]:
        """Answer one message: a command or free text."""
        text = (text or "").strip()
        name, args = "", text
        m = re.match(r"^/([A-Za-z0-9_]+)(?:@\w+)?(?:\s+|$)(.*)$", text, re.S)
        if m:
            name, args = m[1].lower(), m[2].strip()
        try:
            user = self.user(caller)
            if not text:
                return [Reply.plain("Send me a command, e.g. /help.")]
            if caller.group and (gate := self.group_gate(caller, user, name)) is not None:
                return [gate]  # a group's own /start, or a non-admin changing its settings
            if not name:
                return self._free_text(user, text)
            method = getattr(self, f"cmd_{name}", None) if name in COMMAND_NAMES else None
            if method is None:
                close = difflib.get_close_matches(name, sorted(COMMAND_NAMES), n=1)
                hint = f" Did you mean /{close[0]}?" if close else ""
                return [Reply.plain(f"I don't know /{render.clean(name, 30)}.{hint} /help lists what I can do.")]
            if len(args) > MAX_ARG_CHARS:
                return [Reply.plain(f"That is {len(args):,} characters; keep it under {MAX_ARG_CHARS:,} "
                                    "(a title and an abstract fit).")]
            out = method(user, args)
            return out if isinstance(out, list) else [out]
        except UserError as exc:
            return [Reply.plain(str(exc))]
        except Exception:
            log.exception("command failed: user=%s command=/%s args=%r", caller.user_id, name or "(text)",
                          args[:100])
            return [Reply.plain("Sorry, something went wrong on my side. It has been logged; please try again "
                                "in a moment.")]

    def press(self, caller: Caller, data: str, buttons: list[list[Button]] | None = None) -> list[Reply]:
        """Answer a button press. The first reply may have ``edit=True`` to update the pressed message."""
        try:
            user = self.user(caller)
            press = codes.parse(data)
            if (gate := self.group_press_gate(caller, data)) is not None:
                return [gate]
            rows = buttons or []
            if isinstance(press, codes.Feedback):
                return self._press_feedback(user, press, rows)
            if isinstance(press, codes.PaperAction):
                if press.kind == codes.SIMILAR:
                    return self._press_similar(user, press.paper_id)
                return self._press_classify(user, press.paper_id)
            if isinstance(press, codes.FieldMenu):
                return self._press_group(user, press.index)
            if isinstance(press, codes.Follow):
                return self._press_follow(user, press.code)
            if isinstance(press, codes.AuthorPick):
                return self._press_author(user, press.author_id)
            if isinstance(press, codes.LikesPage):
                return self._press_likes(user, press.page)
            return self._press_settings(user, press.action)
        except codes.StaleButton as exc:
            return [Reply(toast=str(exc))]
        except UserError as exc:
            return [Reply(toast=str(exc)[:190])]
        except Exception:
            log.exception("button failed: user=%s data=%r", caller.user_id, data)
            return [Reply(toast="Sorry, that did not work; please try again.")]

    # -- replies for things that are not commands -----------------------------------------------------
    @staticmethod
    def group_chat() -> Reply:
        return Reply.plain("I work in private chats only: open a chat with me and send /start.")

    @staticmethod
    def edited() -> Reply:
        return Reply.plain("I don't act on edited messages; send the corrected command as a new message.")

    @staticmethod
    def unsupported(kind: str = "that") -> Reply:
        return Reply.plain(f"I can't read {kind}; I understand text commands. /help lists them.")


    # -- onboarding and help ----------------------------------------------------------------------------
    def cmd_start(self, user: User, args: str) -> Reply:
        name = render.clean(user.name or "", 40)
        out = Rich().b(f"Hi{' ' + name if name else ''}! I'm arxiv-digest.").nl(2)
        out.text("Every day arXiv announces new papers; I send you the few that match your interests, "
                 "and learn from what you like.").nl(2)
        out.b("Set up in under a minute:").nl()
        out.text("1. Follow categories: tap a field below, or ").code("/follow cs.LG astro-ph.GA").nl()
        out.text("2. Describe your interests: ").code("/interests graph neural networks for molecules").nl()
        out.text("3. Like a few papers you know: ").code("/like 1706.03762").text(" (ids or arXiv links)").nl(2)
        out.extend(self._profile_status(user)).nl()
        if self.scheduled:
            days = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")
            when = "daily" if user.digest_weekday is None else "weekly on " + days[user.digest_weekday]
            out.text(f"Your digest arrives {when} at {user.digest_hour:02d}:00 ({user.timezone}); change it with ")
            out.code("/settings").text(". Try ").code("/digest").text(" now, or ").code("/help")
        else:
            out.text("Ask for today's digest with ").code("/digest").text(", or see ").code("/help")
        out.text(" for everything.")
        return Reply(out, buttons=self._group_menu_buttons())

    def cmd_help(self, user: User, args: str) -> Reply:
        out = Rich().b("What I can do").nl(2)
        for c in COMMANDS:
            out.text(f"/{c.name} – {c.summary}").nl().text("   e.g. ").code(c.example).nl()
        out.nl().text("You can also just send an arXiv id or link. Buttons under a digest: 👍 like, 👎 dislike, "
                      "🔎 more like this.")
        out.nl(2).text("A digest for a group: add me to the group chat and send ").code("/start").text(
            " there; its admins set it up, everyone's 👍/👎 shape it.")
        return Reply(out)


    def _free_text(self, user: User, text: str) -> list[Reply]:
        first = text.split()[0]
        try:
            pid = parse_arxiv_id(first).id
        except InvalidArxivId:
            out = Rich().text("I read commands; /help lists them.")
            if has_words(text):
                out.text(" To find papers about a topic, try ").code("/similar " + render.clean(text, 60))
            return [Reply(out)]
        if (later := self._fetch_first([pid], lambda: self._free_text(user, text))) is not None:
            return [later]
        found, missing = self._papers([pid])
        if missing:
            return [Reply.plain(self._missing_text(missing))]
        p = found[pid]
        out = render.paper_card(Rich(), p, predicted=self._predictions([pid]).get(pid, ()))
        buttons = [[Button("👍 like", codes.like(0, pid)), Button("👎 dislike", codes.dislike(0, pid))],
                   [Button("🔎 similar", codes.similar(pid)), Button("🏷 classify", codes.classify(pid))]]
        return [Reply(out, buttons=buttons)]
