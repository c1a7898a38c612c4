"""Every bot command as a plain function from (caller, arguments) to Replies; no chat service in sight.

:class:`Commands` holds the store and, loaded on first use, the recommender engine and the classifier.
``handle(caller, text)`` runs one line a user typed (a ``/command`` or free text) and ``press(caller, data,
buttons)`` one button press. Bad input of any kind gets a short reply that says what to do instead; an
unexpected error is logged with its context and answered with an apology, never a traceback. Front ends
(``bot.telegram``, ``bot.console``) only render what comes back.
"""
from __future__ import annotations

import dataclasses
import difflib
import logging
import re
import zoneinfo
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Callable, Sequence

from recommender.config import Settings
from recommender.ids import InvalidArxivId, parse_arxiv_id
from recommender.models import Paper
from recommender.store import Store, UnknownCategory, User

from . import render
from .reply import Button, Document, Reply
from .rich import Rich

log = logging.getLogger(__name__)

MAX_ARG_CHARS = 4000  # a title plus the longest arXiv abstract fit comfortably
MAX_IDS = 20
MAX_INTERESTS = 500
MAX_SIMILAR = 20
LIKES_PAGE = 10


@dataclass(frozen=True)
class Caller:
    """Who is talking: a user id (Telegram's, or 1 in the terminal) and where to answer."""

    user_id: int
    chat_id: int | None = None
    name: str = ""


@dataclass(frozen=True)
class CommandInfo:
    name: str
    summary: str
    example: str


@dataclass
class DigestPlan:
    """A digest ready to send: its reply and what to log once it went out."""

    day: str
    reply: Reply
    items: list[tuple[str, int, float]] = field(default_factory=list)  # (paper id, rank, score)


COMMANDS: tuple[CommandInfo, ...] = (
    CommandInfo("start", "what I do and a one-minute set-up", "/start"),
    CommandInfo("follow", "follow arXiv categories (no argument: pick from a menu)", "/follow cs.LG astro-ph.GA"),
    CommandInfo("unfollow", "stop following categories", "/unfollow astro-ph.GA"),
    CommandInfo("interests", "describe your interests in a sentence (- to clear)",
                "/interests graph neural networks for molecules"),
    CommandInfo("like", "like papers by id or link", "/like 1706.03762 https://arxiv.org/abs/2005.14165"),
    CommandInfo("dislike", "tell me a paper is not for you", "/dislike 2101.00001"),
    CommandInfo("unlike", "forget a like or dislike", "/unlike 1706.03762"),
    CommandInfo("likes", "the papers you liked, 10 a page", "/likes 2"),
    CommandInfo("export", "your liked papers as a BibTeX file", "/export"),
    CommandInfo("similar", "papers close to an id, a link or any text; optional count", "/similar 1706.03762 5"),
    CommandInfo("classify", "arXiv categories for a paper or a title (blank line, then abstract)",
                "/classify Attention is all you need"),
    CommandInfo("digest", "today's digest, now", "/digest"),
    CommandInfo("settings", "digest hour, timezone, size, minimum score, cross-lists, pause",
                "/settings timezone Europe/Berlin"),
    CommandInfo("pause", "stop daily digests (/resume to restart)", "/pause"),
    CommandInfo("resume", "restart daily digests", "/resume"),
    CommandInfo("help", "this list", "/help"),
)
COMMAND_NAMES = {c.name for c in COMMANDS}


class UserError(Exception):
    """Input the user can fix; the message is shown to them as it is."""


@lru_cache(maxsize=1)
def _timezones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def parse_timezone(text: str) -> str:
    name = text.strip()
    if not name or len(name) > 64:
        raise UserError("Give a timezone name like Europe/Berlin, America/New_York or UTC.")
    lower = {tz.lower(): tz for tz in _timezones()}
    if name.lower() in lower:
        return lower[name.lower()]
    close = difflib.get_close_matches(name, _timezones(), n=3, cutoff=0.6)
    tail = name.split("/")[-1].lower()
    close += [tz for tz in _timezones() if tz.lower().endswith("/" + tail) and tz not in close][:3]
    hint = f" Did you mean {', '.join(close[:3])}?" if close else " Use a name like Europe/Berlin or Asia/Tokyo."
    raise UserError(f"I don't know the timezone {render.clean(name, 40)!r}.{hint}")


def _on_off(text: str) -> bool:
    t = text.strip().lower()
    if t in {"on", "yes", "true", "1", "enable", "enabled"}:
        return True
    if t in {"off", "no", "false", "0", "disable", "disabled"}:
        return False
    raise UserError("Say on or off, e.g. /settings crosslists off")


class Commands:
    """The bot's logic. Thread-confined: call it from one thread at a time (front ends use one worker)."""

    def __init__(self, settings: Settings, store: Store, engine_factory: Callable[[], Any] | None = None,
                 classifier_factory: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self.store = store
        self._engine_factory = engine_factory or self._default_engine
        self._classifier_factory = classifier_factory or self._default_classifier

    # -- collaborators, loaded on first use -------------------------------------------------------------
    def _default_engine(self) -> Any:
        from recommender.engine import Engine
        # interactive look-ups of unknown ids should fail fast rather than retry for minutes
        quick = dataclasses.replace(self.settings, api_retries=min(self.settings.api_retries, 2),
                                    api_timeout=min(self.settings.api_timeout, 15.0), api_delay=1.0)
        return Engine(quick, self.store)

    def _default_classifier(self) -> Any:
        from pathlib import Path

        from recommender.classify import get_classifier
        return get_classifier(Path(self.settings.classifier_dir) if self.settings.classifier_dir else None)

    @cached_property
    def engine(self) -> Any:
        try:
            return self._engine_factory()
        except Exception:
            log.exception("the recommender engine could not be loaded")
            raise UserError("Recommendations are not available right now (the engine could not be loaded); "
                            "the operator has been told.") from None

    @cached_property
    def classifier(self) -> Any:
        return self._classifier_factory()

    @cached_property
    def _groups(self) -> list[tuple[str, list[str]]]:
        return sorted(self.store.category_groups().items())

    @cached_property
    def _names(self) -> dict[str, str]:
        return self.store.category_names()

    # -- entry points -----------------------------------------------------------------------------------
    def user(self, caller: Caller) -> User:
        s = self.settings
        user = self.store.get_user(caller.user_id) or self.store.ensure_user(
            caller.user_id, chat_id=caller.chat_id, name=caller.name or None, timezone=s.digest_timezone,
            digest_hour=s.digest_hour, digest_size=s.digest_size, min_score=s.min_score)
        changes: dict[str, object] = {}
        if not user.active:
            changes["active"] = 1  # they talk to us again, so they unblocked the bot
        if caller.chat_id is not None and user.chat_id != caller.chat_id:
            changes["chat_id"] = caller.chat_id
        return self.store.update_user(user.id, **changes) if changes else user

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
            kind, _, rest = (data or "").partition(":")
            handler = {"L": self._press_feedback, "D": self._press_feedback, "S": self._press_similar,
                       "C": self._press_classify, "FG": self._press_group, "F": self._press_follow,
                       "LK": self._press_likes, "ST": self._press_settings}.get(kind)
            if handler is None:
                return [Reply(toast="This button is from an older version of me; send /help.")]
            return handler(user, kind, rest, buttons or [])
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

    # -- helpers ----------------------------------------------------------------------------------------
    def _parse_ids(self, args: str, usage: str) -> list[str]:
        tokens = [t for t in re.split(r"[\s,;]+", args) if t]
        if not tokens:
            raise UserError(f"Give one or more arXiv ids or links, e.g. {usage}")
        if len(tokens) > MAX_IDS:
            raise UserError(f"That is {len(tokens)} ids; send at most {MAX_IDS} at a time.")
        ids, bad = [], []
        for t in tokens:
            try:
                ids.append(parse_arxiv_id(t).id)
            except InvalidArxivId as exc:
                bad.append(str(exc))
        if bad:
            raise UserError(bad[0] if len(bad) == 1 else f"{len(bad)} of those are not arXiv ids. {bad[0]}")
        return list(dict.fromkeys(ids))

    def _papers(self, ids: Sequence[str]) -> tuple[dict[str, Paper], list[str]]:
        """Papers for ``ids``, fetching unknown ones from arXiv; returns (found, missing)."""
        found = self.store.get_papers(ids)
        lacking = [i for i in ids if i not in found]
        if lacking:
            try:
                found.update(self.engine.ensure_papers(lacking))
            except (LookupError, InvalidArxivId) as exc:
                log.info("arXiv look-up of %s failed: %s", lacking, exc)
                found.update(self.store.get_papers(lacking))  # those fetched before the failure
            self._classify_new([i for i in lacking if i in found])
        return found, [i for i in ids if i not in found]

    def _classify_new(self, ids: Sequence[str]) -> None:
        """Store predicted categories for papers just fetched from arXiv (skipped if no classifier)."""
        if not ids:
            return
        try:
            from recommender.pipeline import classify_papers
            classify_papers(self.store, self.classifier, list(ids))
        except Exception:  # predictions decorate replies; a missing model must not fail the command
            log.warning("could not classify fetched papers %s", list(ids), exc_info=True)

    @staticmethod
    def _missing_text(missing: Sequence[str]) -> str:
        return (f"I could not find {', '.join(missing)} on arXiv (check the id, or try again later if arXiv "
                "is unreachable).")

    def _has_profile(self, user: User) -> bool:
        return bool(user.categories or user.interests or self.store.liked_ids(user.id))

    def _profile_status(self, user: User) -> Rich:
        likes = len(self.store.liked_ids(user.id))
        out = Rich()
        out.text(("✓ " if user.categories else "· ") + "Following: ")
        out.text(" ".join(user.categories) if user.categories else "no categories yet").nl()
        out.text(("✓ " if user.interests else "· ") + "Interests: ")
        out.text(render.clean(user.interests, 120) if user.interests else "not described yet").nl()
        out.text(("✓ " if likes else "· ") + f"Liked papers: {likes}").nl()
        return out

    def _predictions(self, ids: Sequence[str]) -> dict[str, list[tuple[str, float]]]:
        try:
            return self.store.predictions(list(ids))
        except Exception:  # predictions are decoration; never fail a reply over them
            log.exception("reading predictions failed")
            return {}

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
        out.text(f"Your digest arrives daily at {user.digest_hour:02d}:00 ({user.timezone}); change it with ")
        out.code("/settings").text(". Try ").code("/digest").text(" now, or ").code("/help").text(" for everything.")
        return Reply(out, buttons=self._group_menu_buttons())

    def cmd_help(self, user: User, args: str) -> Reply:
        out = Rich().b("What I can do").nl(2)
        for c in COMMANDS:
            out.text(f"/{c.name} – {c.summary}").nl().text("   e.g. ").code(c.example).nl()
        out.nl().text("You can also just send an arXiv id or link. Buttons under a digest: 👍 like, 👎 dislike, "
                      "🔎 more like this.")
        return Reply(out)

    # -- categories -------------------------------------------------------------------------------------
    def _group_menu_buttons(self) -> list[list[Button]]:
        buttons = [Button(g, f"FG:{i}") for i, (g, _) in enumerate(self._groups)]
        return [buttons[i:i + 2] for i in range(0, len(buttons), 2)]

    def _group_menu(self, user: User) -> Reply:
        out = Rich().b("Pick a field, then tap categories to follow or unfollow them.").nl()
        out.text("Following: " + (" ".join(user.categories) or "nothing yet"))
        return Reply(out, buttons=self._group_menu_buttons())

    def _category_menu(self, user: User, index: int) -> Reply:
        if not 0 <= index < len(self._groups):
            raise UserError("That menu is out of date; send /follow again.")
        group, codes = self._groups[index]
        followed = set(user.categories)
        out = Rich().b(group).text(": tap to follow (✓) or unfollow").nl(2)
        for code in codes:
            out.text(("✓ " if code in followed else "   ")).code(code).text(" " + self._names.get(code, "")).nl()
        btns = [Button(("✓ " if c in followed else "") + c, f"F:{c}") for c in codes]
        rows = [btns[i:i + 3] for i in range(0, len(btns), 3)]
        rows.append([Button("« all fields", "FG:")])
        return Reply(out, buttons=rows)

    def _canonical(self, tokens: Sequence[str]) -> list[str]:
        codes, errors = [], []
        for t in tokens:
            try:
                codes.append(self.store.canonical_category(t))
            except UnknownCategory as exc:
                errors.append(str(exc))
        if errors:
            raise UserError(errors[0][0].upper() + errors[0][1:] + " Nothing was changed.")
        return list(dict.fromkeys(codes))

    def cmd_follow(self, user: User, args: str) -> Reply:
        tokens = [t for t in re.split(r"[\s,;]+", args) if t]
        if not tokens:
            return self._group_menu(user)
        if len(tokens) > 50:
            raise UserError("That is too many categories at once; send at most 50.")
        codes = self._canonical(tokens)
        self.store.set_user_categories(user.id, codes)
        user = self.store.get_user(user.id) or user
        out = Rich().text("Following " + " ".join(codes) + ".").nl()
        out.text("All followed: " + " ".join(user.categories)).nl()
        if not self.store.liked_ids(user.id) and not user.interests:
            out.text("Next: ").code("/interests your topic in a sentence").text(" or ").code("/like ID").nl()
        return Reply(out)

    def cmd_unfollow(self, user: User, args: str) -> Reply:
        tokens = [t for t in re.split(r"[\s,;]+", args) if t]
        if not tokens:
            if not user.categories:
                return Reply.plain("You follow no categories. /follow shows the menu.")
            return Reply.plain("You follow " + " ".join(user.categories) + ". Say which to drop, e.g. /unfollow "
                               + user.categories[0])
        codes = self._canonical(tokens)
        removed = self.store.remove_user_categories(user.id, codes)
        user = self.store.get_user(user.id) or user
        if not removed:
            return Reply.plain(f"You were not following {' '.join(codes)}. You follow: "
                               + (" ".join(user.categories) or "nothing"))
        return Reply.plain("Unfollowed " + " ".join(codes) + ". Still following: "
                           + (" ".join(user.categories) or "nothing"))

    def _press_group(self, user: User, kind: str, rest: str, buttons: list[list[Button]]) -> list[Reply]:
        if rest == "":
            r = self._group_menu(user)
        else:
            if not rest.isdigit():
                raise UserError("That menu is out of date; send /follow again.")
            r = self._category_menu(user, int(rest))
        r.edit = True
        return [r]

    def _press_follow(self, user: User, kind: str, rest: str, buttons: list[list[Button]]) -> list[Reply]:
        code = self._canonical([rest])[0]
        if code in user.categories:
            self.store.remove_user_categories(user.id, [code])
            toast = f"Unfollowed {code}"
        else:
            self.store.set_user_categories(user.id, [code])
            toast = f"Following {code}"
        user = self.store.get_user(user.id) or user
        index = next((i for i, (_, codes) in enumerate(self._groups) if code in codes), None)
        r = self._category_menu(user, index) if index is not None else self._group_menu(user)
        r.edit, r.toast = True, toast
        return [r]

    # -- interests and feedback -------------------------------------------------------------------------
    def cmd_interests(self, user: User, args: str) -> Reply:
        if not args:
            if user.interests:
                return Reply(Rich().text("Your interests: ").i(user.interests).nl()
                             .text("Change with /interests <sentence>, clear with /interests -"))
            return Reply(Rich().text("Describe what you want to read in a sentence, e.g. ")
                         .code("/interests dark matter in dwarf galaxies"))
        if args.strip().lower() in {"-", "clear", "none", "reset"}:
            self.store.update_user(user.id, interests="")
            return Reply.plain("Interests cleared.")
        if len(args) > MAX_INTERESTS:
            raise UserError(f"Keep it under {MAX_INTERESTS} characters: a sentence or two works best.")
        if len(args.strip()) < 3:
            raise UserError("That is too short to go on; describe your interests in a few words.")
        text = " ".join(args.split())
        self.store.update_user(user.id, interests=text)
        return Reply(Rich().text("Got it. Your interests: ").i(text).nl()
                     .text("They shape your digest from now on; try /digest."))

    def _feedback(self, user: User, args: str, value: int, usage: str) -> Reply:
        ids = self._parse_ids(args, usage)
        found, missing = self._papers(ids)
        out = Rich()
        verb = "Liked" if value > 0 else "Disliked"
        for pid in ids:
            if pid not in found:
                continue
            changed = self.store.set_feedback(user.id, pid, value)
            out.text(("✓ " if changed else "(already) ") + f"{verb} ").link(pid, found[pid].url)
            out.text(": " + render.clean(found[pid].title, 120)).nl()
        if missing:
            out.text(self._missing_text(missing)).nl()
        if found and value > 0:
            out.text("See more like them with ").code(f"/similar {next(iter(found))}")
        return Reply(out)

    def cmd_like(self, user: User, args: str) -> Reply:
        return self._feedback(user, args, 1, "/like 1706.03762")

    def cmd_dislike(self, user: User, args: str) -> Reply:
        return self._feedback(user, args, -1, "/dislike 1706.03762")

    def cmd_unlike(self, user: User, args: str) -> Reply:
        ids = self._parse_ids(args, "/unlike 1706.03762")
        removed = [i for i in ids if self.store.remove_feedback(user.id, i)]
        kept = [i for i in ids if i not in removed]
        parts = []
        if removed:
            parts.append("Forgot your feedback on " + ", ".join(removed) + ".")
        if kept:
            parts.append("You had not liked or disliked " + ", ".join(kept) + ".")
        return Reply.plain(" ".join(parts))

    def _likes_page(self, user: User, page: int) -> Reply:
        ids = self.store.liked_ids(user.id)
        if not ids:
            return Reply(Rich().text("You have not liked any papers yet. Like one with ").code("/like 1706.03762")
                         .text(" or the 👍 buttons under a digest."))
        pages = (len(ids) + LIKES_PAGE - 1) // LIKES_PAGE
        page = min(max(page, 1), pages)
        chunk = ids[(page - 1) * LIKES_PAGE: page * LIKES_PAGE]
        papers = self.store.get_papers(chunk)
        out = Rich().b(f"Your likes ({len(ids)})").text(f", page {page} of {pages}").nl(2)
        for n, pid in enumerate(chunk, start=(page - 1) * LIKES_PAGE + 1):
            p = papers.get(pid)
            out.b(f"{n}. ")
            if p:
                out.link(render.clean(p.title, 150), p.url).text(f" ({pid})").nl()
            else:
                out.text(pid).nl()
        out.nl().text("/unlike ID forgets one; /export gives them as BibTeX.")
        nav = []
        if page > 1:
            nav.append(Button("« previous", f"LK:{page - 1}"))
        if page < pages:
            nav.append(Button("next »", f"LK:{page + 1}"))
        return Reply(out, buttons=[nav] if nav else [])

    def cmd_likes(self, user: User, args: str) -> Reply:
        page = 1
        if args:
            if not args.strip().isdigit():
                raise UserError("Give a page number, e.g. /likes 2")
            page = int(args.strip()[:6])
        return self._likes_page(user, page)

    def _press_likes(self, user: User, kind: str, rest: str, buttons: list[list[Button]]) -> list[Reply]:
        r = self._likes_page(user, int(rest) if rest.isdigit() else 1)
        r.edit = True
        return [r]

    def cmd_export(self, user: User, args: str) -> Reply:
        ids = self.store.liked_ids(user.id)
        if not ids:
            return Reply.plain("Nothing to export yet: like papers with /like ID or the 👍 buttons.")
        papers = self.store.get_papers(ids)
        text = render.bibtex(papers[i] for i in ids if i in papers)
        return Reply(Rich().text(f"{len(papers)} liked papers as BibTeX."),
                     document=Document("arxiv-digest-likes.bib", text.encode("utf-8"),
                                       caption=f"{len(papers)} liked papers"))

    def _press_feedback(self, user: User, kind: str, rest: str, buttons: list[list[Button]]) -> list[Reply]:
        _, _, pid = rest.partition(":")
        try:
            pid = parse_arxiv_id(pid).id
        except InvalidArxivId:
            raise UserError("This button is out of date.") from None
        if not self.store.has_paper(pid):
            found, _ = self._papers([pid])
            if pid not in found:
                raise UserError("I no longer know that paper; send its id to see it again.")
        value = 1 if kind == "L" else -1
        changed = self.store.set_feedback(user.id, pid, value)
        if changed:
            toast = f"👍 Liked {pid}; your next digests learn from it" if value > 0 else \
                f"👎 Noted: fewer papers like {pid}"
        else:
            toast = f"You already {'liked' if value > 0 else 'disliked'} {pid}; /unlike {pid} undoes it"
        numbered = render.numbered_ids(buttons)
        if not numbered:
            return [Reply(toast=toast)]
        liked, disliked = set(self.store.liked_ids(user.id)), set(self.store.disliked_ids(user.id))
        new = render.digest_buttons(numbered, liked, disliked)
        # keep any rows that are not digest rows (none today, but be safe)
        return [Reply(buttons=new, toast=toast, edit=True)]

    # -- similar and classify ---------------------------------------------------------------------------
    def _query(self, args: str, usage: str) -> tuple[str, Paper | None]:
        """An id/link (-> its paper) or free text."""
        text = args.strip()
        if not text:
            raise UserError(f"Give an arXiv id, a link or some text, e.g. {usage}")
        first = text.split()[0]
        if len(text.split()) == 1 or re.match(r"^(https?://|arxiv:|\d{4}\.\d)", first, re.I):
            try:
                pid = parse_arxiv_id(first).id
            except InvalidArxivId as exc:
                if len(text.split()) == 1 and re.search(r"\d", first):
                    raise UserError(str(exc)) from None
            else:
                found, missing = self._papers([pid])
                if missing:
                    raise UserError(self._missing_text(missing))
                return pid, found[pid]
        if len(re.sub(r"\W", "", text)) < 3:
            raise UserError(f"That is too short to search for. Try an id or a few words, e.g. {usage}")
        return text, None

    def cmd_similar(self, user: User, args: str) -> Reply:
        tokens = args.split()
        n = 5
        if len(tokens) > 1 and tokens[-1].isdigit():
            n = int(tokens[-1][:4])
            if not 1 <= n <= MAX_SIMILAR:
                raise UserError(f"Ask for 1 to {MAX_SIMILAR} papers, e.g. /similar 1706.03762 5")
            args = args[: args.rstrip().rfind(tokens[-1])].strip()
        query, paper = self._query(args, "/similar 1706.03762 or /similar diffusion models for proteins")
        return self._similar_reply(paper.id if paper else query, paper, n)

    def _similar_reply(self, query: str, paper: Paper | None, n: int) -> Reply:
        recs = self.engine.similar(paper.id if paper else query, n)
        out = Rich()
        if paper:
            out.b("Close to ").link(paper.id, paper.url).b(": ").text(render.clean(paper.title, 150)).nl(2)
        else:
            out.b("Close to “").text(render.clean(query, 100)).b("”:").nl(2)
        if not recs:
            out.text("I found nothing close enough in the papers I hold.")
            return Reply(out)
        preds = self._predictions([r.paper.id for r in recs])
        for k, r in enumerate(recs, 1):
            render.paper_card(out, r.paper, k, predicted=preds.get(r.paper.id, ()), score=r.score)
            out.nl()
        out.text("Like one with /like ID.")
        return Reply(out)

    def _press_similar(self, user: User, kind: str, rest: str, buttons: list[list[Button]]) -> list[Reply]:
        try:
            pid = parse_arxiv_id(rest).id
        except InvalidArxivId:
            raise UserError("This button is out of date.") from None
        found, missing = self._papers([pid])
        if missing:
            raise UserError("I no longer know that paper.")
        return [Reply(toast=f"Papers like {pid}…"), self._similar_reply(pid, found[pid], 5)]

    def cmd_classify(self, user: User, args: str) -> Reply:
        if not args.strip():
            raise UserError("Give an arXiv id, a link, or a title (optionally a blank line and the abstract), "
                            "e.g. /classify Attention is all you need")
        paper = None
        if "\n" not in args.strip():
            _, paper = self._query(args, "/classify 1706.03762")
        if paper is not None:
            title, abstract = paper.title, paper.abstract
        else:
            title, _, abstract = args.strip().partition("\n\n")
            title, abstract = " ".join(title.split()), abstract.strip()
            if len(re.sub(r"\W", "", title + abstract)) < 3:
                raise UserError("That is too short to classify; send a title, or an arXiv id.")
        return self._classify_reply(title, abstract, paper)

    def _classify_reply(self, title: str, abstract: str, paper: Paper | None) -> Reply:
        try:
            classifier = self.classifier
        except Exception:
            log.exception("the classifier could not be loaded")
            raise UserError("Category prediction is not available right now (the model is not installed); "
                            "the operator has been told.") from None
        try:
            pred = classifier.predict(title, abstract)
        except ValueError as exc:  # ClassifierError: nothing to classify
            raise UserError(f"I can't classify that: {exc}.") from None
        out = Rich()
        if paper:
            out.b("Categories for ").link(paper.id, paper.url).b(": ").text(render.clean(paper.title, 150)).nl()
            out.i("listed on arXiv as " + (" ".join(paper.categories) or "nothing")).nl(2)
        else:
            out.b("Categories for “").text(render.clean(title, 150)).b("”").nl(2)
        cats = [(c, p) for c, p in pred.categories if p >= 0.05][:6] or list(pred.categories[:3])
        for code, p in cats:
            out.code(code).text(f" {self._names.get(code) or getattr(pred, 'names', {}).get(code, '')} ").b(f"{p:.0%}").nl()
        masters = [(g, p) for g, p in pred.masters if p >= 0.05][:3] or list(pred.masters[:1])
        if masters:
            out.nl().text("Fields: " + ", ".join(f"{g} {p:.0%}" for g, p in masters))
        if getattr(pred, "unknown_ratio", 0.0) > 0.5:
            out.nl().i("Most of those words are new to me, so take this with a grain of salt.")
        return Reply(out)

    def _press_classify(self, user: User, kind: str, rest: str, buttons: list[list[Button]]) -> list[Reply]:
        try:
            pid = parse_arxiv_id(rest).id
        except InvalidArxivId:
            raise UserError("This button is out of date.") from None
        found, missing = self._papers([pid])
        if missing:
            raise UserError("I no longer know that paper.")
        p = found[pid]
        return [Reply(toast=f"Classifying {pid}…"), self._classify_reply(p.title, p.abstract, p)]

    def _free_text(self, user: User, text: str) -> list[Reply]:
        first = text.split()[0]
        try:
            pid = parse_arxiv_id(first).id
        except InvalidArxivId:
            out = Rich().text("I read commands; /help lists them. To find papers about a topic, try ")
            out.code("/similar " + render.clean(text, 60))
            return [Reply(out)]
        found, missing = self._papers([pid])
        if missing:
            return [Reply.plain(self._missing_text(missing))]
        p = found[pid]
        out = render.paper_card(Rich(), p, predicted=self._predictions([pid]).get(pid, ()))
        buttons = [[Button("👍 like", f"L:0:{pid}"), Button("👎 dislike", f"D:0:{pid}")],
                   [Button("🔎 similar", f"S:{pid}"), Button("🏷 classify", f"C:{pid}")]]
        return [Reply(out, buttons=buttons)]

    # -- digests ----------------------------------------------------------------------------------------
    def plan_digest(self, user: User, day: str, recs: Sequence[Any]) -> DigestPlan:
        """The compact digest message for ``recs`` (Recommendations) of announcement ``day``."""
        out = Rich().b(f"Your arXiv digest for {day}").nl()
        preds = self._predictions([r.paper.id for r in recs])
        out.nl()
        for k, r in enumerate(recs, 1):
            render.paper_card(out, r.paper, k, why=getattr(r, "why", ""), predicted=preds.get(r.paper.id, ()))
            out.nl()
        out.i("👍/👎 teach me your taste; 🔎 shows more like a paper.")
        liked, disliked = set(self.store.liked_ids(user.id)), set(self.store.disliked_ids(user.id))
        buttons = render.digest_buttons([(k, r.paper.id) for k, r in enumerate(recs, 1)], liked, disliked)
        items = [(r.paper.id, k, float(r.score)) for k, r in enumerate(recs, 1)]
        return DigestPlan(day, Reply(out, buttons=buttons), items)

    def empty_digest(self, user: User, day: str) -> Reply:
        out = Rich().text(f"Nothing in arXiv's announcement of {day} matched your profile closely enough")
        out.text(f" (minimum score {user.min_score:.2f}).").nl()
        if not self._has_profile(user):
            out.text("Tell me what you like first: /follow, /interests or /like.")
        else:
            out.text("Lower the bar with ").code("/settings minscore 0.2").text(" or follow more categories.")
        return Reply(out)

    def build_digest(self, user: User, day: str) -> DigestPlan:
        """Rank ``day``'s papers for ``user``; an empty plan (no items) carries the 'nothing matched' reply."""
        recs = list(self.engine.digest(user.id, day, n=user.digest_size))
        if not recs:
            return DigestPlan(day, self.empty_digest(user, day), [])
        return self.plan_digest(user, day, recs)

    def no_announcement(self, user: User, local_day: str, last_day: str | None) -> Reply:
        out = Rich().text(f"No new arXiv papers for you today ({local_day}): arXiv has not announced a new "
                          "listing since ")
        out.text(f"{last_day}." if last_day else "I started.").nl()
        out.text("arXiv announces Sunday to Thursday evenings (US Eastern), not on Fridays, Saturdays or "
                 "holidays. Your next digest comes with the next announcement.")
        return Reply(out)

    def cmd_digest(self, user: User, args: str) -> list[Reply] | Reply:
        day = self.store.latest_announcement()
        if day is None:
            return Reply.plain("I have no arXiv announcement stored yet; the next one comes in with the next "
                               "ingestion run.")
        if not self._has_profile(user):
            out = Rich().text("I don't know your taste yet, so this is a plain sample. ")
            out.text("Follow categories (/follow), describe your interests (/interests) or like papers (/like) "
                     "for a personal digest.").nl()
            intro = [Reply(out)]
        else:
            intro = []
        plan = self.build_digest(user, day)
        if plan.items:
            plan.reply.delivery = plan
        return [*intro, plan.reply]

    # -- settings ---------------------------------------------------------------------------------------
    def _settings_reply(self, user: User, note: str = "") -> Reply:
        out = Rich()
        if note:
            out.text(note).nl(2)
        out.b("Your settings").nl()
        out.text(f"Digest at {user.digest_hour:02d}:00 {user.timezone}, up to {user.digest_size} papers, "
                 f"minimum score {user.min_score:.2f}").nl()
        out.text(f"Cross-lists: {'on' if user.cross_lists else 'off'} · Digests: "
                 f"{'paused' if user.paused else 'on'}").nl(2)
        out.text("Change: ").code("/settings hour 7").text(", ").code("/settings timezone Europe/Berlin")
        out.text(", ").code("/settings size 8").text(", ").code("/settings minscore 0.25").text(", ")
        out.code("/settings crosslists off").text(", ").code("/pause").text(", ").code("/resume")
        buttons = [[Button("▶ resume digests" if user.paused else "⏸ pause digests",
                           "ST:resume" if user.paused else "ST:pause"),
                    Button("cross-lists: " + ("on → off" if user.cross_lists else "off → on"),
                           "ST:cross:" + ("off" if user.cross_lists else "on"))]]
        return Reply(out, buttons=buttons)

    def cmd_settings(self, user: User, args: str) -> Reply:
        tokens = args.split()
        if not tokens:
            return self._settings_reply(user)
        key, value = tokens[0].lower().rstrip(":="), " ".join(tokens[1:])
        key = {"tz": "timezone", "time": "hour", "n": "size", "min": "minscore", "min_score": "minscore",
               "cross": "crosslists", "cross-lists": "crosslists", "cross_lists": "crosslists"}.get(key, key)
        if key in {"pause", "resume"}:
            return self._set(user, paused=int(key == "pause"))
        if not value:
            raise UserError(f"Give a value, e.g. {self._setting_example(key)}")
        if key == "hour":
            m = re.match(r"^(\d{1,2})(?::00)?$", value.strip())
            if not m or not 0 <= int(m[1]) <= 23:
                raise UserError("The hour is 0 to 23 in your timezone, e.g. /settings hour 7")
            return self._set(user, digest_hour=int(m[1]))
        if key == "timezone":
            return self._set(user, timezone=parse_timezone(value))
        if key == "size":
            if not value.strip().isdigit() or not 1 <= int(value.strip()[:4]) <= 20:
                raise UserError("The digest size is 1 to 20 papers, e.g. /settings size 8")
            return self._set(user, digest_size=int(value.strip()))
        if key == "minscore":
            try:
                score = float(value.strip().replace(",", "."))
            except ValueError:
                score = -1.0
            if not 0.0 <= score <= 1.0:
                raise UserError("The minimum score is between 0 and 1, e.g. /settings minscore 0.25")
            return self._set(user, min_score=score)
        if key == "crosslists":
            return self._set(user, cross_lists=int(_on_off(value)))
        raise UserError(f"I have no setting {render.clean(key, 30)!r}. Settings: hour, timezone, size, minscore, "
                        "crosslists, pause, resume. Send /settings to see yours.")

    @staticmethod
    def _setting_example(key: str) -> str:
        return {"hour": "/settings hour 7", "timezone": "/settings timezone Europe/Berlin",
                "size": "/settings size 8", "minscore": "/settings minscore 0.25",
                "crosslists": "/settings crosslists off"}.get(key, "/settings hour 7")

    def _set(self, user: User, **values: object) -> Reply:
        user = self.store.update_user(user.id, **values)
        return self._settings_reply(user, "Saved.")

    def cmd_pause(self, user: User, args: str) -> Reply:
        self.store.update_user(user.id, paused=1)
        return Reply.plain("Daily digests paused. /resume restarts them; commands keep working.")

    def cmd_resume(self, user: User, args: str) -> Reply:
        user = self.store.update_user(user.id, paused=0)
        return Reply.plain(f"Daily digests on again, at {user.digest_hour:02d}:00 {user.timezone}.")

    def _press_settings(self, user: User, kind: str, rest: str, buttons: list[list[Button]]) -> list[Reply]:
        if rest in {"pause", "resume"}:
            user = self.store.update_user(user.id, paused=int(rest == "pause"))
            toast = "Digests paused" if rest == "pause" else "Digests on"
        elif rest.startswith("cross:"):
            user = self.store.update_user(user.id, cross_lists=int(rest.endswith(":on")))
            toast = "Cross-lists " + ("on" if user.cross_lists else "off")
        else:
            raise UserError("This button is out of date; send /settings.")
        r = self._settings_reply(user)
        r.edit, r.toast = True, toast
        return [r]
