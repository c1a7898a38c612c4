"""Commands about what a user wants: categories to follow (by name or from menus), interests, settings.

Category menus go field by field (taxonomy groups) with a toggle button per category; ``/follow author NAME``
is handed to :mod:`bot.cmd_follow`. Settings cover the digest hour and IANA timezone, frequency (daily, or
weekly on a weekday), size, minimum score, cross-lists, pause and resume, each validated with a reply that
says what a good value looks like.
"""
from __future__ import annotations

import difflib
import logging
import re
import zoneinfo
from collections.abc import Sequence
from functools import lru_cache

from recommender.store import UnknownCategory, User
from recommender.store.users import MAX_DIGEST_SIZE

from . import buttons as codes
from . import render
from .cmd_base import MAX_INTERESTS, UserError, parse_int
from .cmd_follow import FollowCommands, author_args
from .inputs import ascii_number, has_words, visible_text
from .reply import Button, Reply
from .rich import Rich

log = logging.getLogger(__name__)

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def parse_frequency(text: str) -> int | None:
    """``daily`` -> None; ``weekly [weekday]`` (``weekly monday``, ``weekly mon``; Monday when none is said) -> the
    weekday, Monday = 0. UserError for anything else."""
    words = text.lower().replace(",", " ").split()
    if words in (["daily"], ["day"], ["every", "day"]):
        return None
    if words and words[0] in {"weekly", "week"}:
        words = words[1:]
        if words[:1] == ["on"]:
            words = words[1:]
        if not words:
            return 0
        if len(words) == 1:
            name = words[0].rstrip("s") if words[0].endswith("days") else words[0]
            for k, day in enumerate(WEEKDAYS):
                if len(name) >= 3 and day.startswith(name):
                    return k
    raise UserError("Say daily, or weekly and a weekday, e.g. /settings frequency weekly monday")


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


class ProfileCommands(FollowCommands):
    # -- categories -------------------------------------------------------------------------------------
    def _group_menu_buttons(self) -> list[list[Button]]:
        buttons = [Button(g, codes.field_menu(i)) for i, (g, _) in enumerate(self._groups)]
        return [buttons[i:i + 2] for i in range(0, len(buttons), 2)]

    def _group_menu(self, user: User) -> Reply:
        out = Rich().b("Pick a field, then tap categories to follow or unfollow them.").nl()
        out.text("Following: " + (" ".join(user.categories) or "nothing yet"))
        return Reply(out, buttons=self._group_menu_buttons())

    def _category_menu(self, user: User, index: int) -> Reply:
        if not 0 <= index < len(self._groups):
            raise UserError("That menu is out of date; send /follow again.")
        group, group_codes = self._groups[index]
        followed = set(user.categories)
        out = Rich().b(group).text(": tap to follow (✓) or unfollow").nl(2)
        for code in group_codes:
            out.text("✓ " if code in followed else "   ").code(code).text(" " + self._names.get(code, "")).nl()
        btns = [Button(("✓ " if c in followed else "") + c, codes.follow(c)) for c in group_codes]
        rows = [btns[i:i + 3] for i in range(0, len(btns), 3)]
        rows.append([Button("« all fields", codes.field_menu())])
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

    def cmd_follow(self, user: User, args: str) -> Reply | list[Reply]:
        if (name := author_args(args)) is not None:
            return self.follow_author(user, name)
        tokens = [t for t in re.split(r"[\s,;]+", args) if t]
        if not tokens:
            authors = self.authors_overview(user)
            return [self._group_menu(user), authors] if authors is not None else self._group_menu(user)
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
        if (name := author_args(args)) is not None:
            return self.unfollow_author(user, name)
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

    def _press_group(self, user: User, index: int | None) -> list[Reply]:
        r = self._group_menu(user) if index is None else self._category_menu(user, index)
        r.edit = True
        return [r]

    def _press_follow(self, user: User, code: str) -> list[Reply]:
        code = self._canonical([code])[0]
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
        text = visible_text(args)  # zero-width and control characters are not interests
        if len(text) > MAX_INTERESTS:
            raise UserError(f"Keep it under {MAX_INTERESTS} characters: a sentence or two works best.")
        if len(text) < 3 or not has_words(text):
            raise UserError("That is too short to go on; describe your interests in a few words, e.g. "
                            "/interests dark matter in dwarf galaxies")
        self.store.update_user(user.id, interests=text)
        return Reply(Rich().text("Got it. Your interests: ").i(text).nl()
                     .text("They shape your digest from now on; try /digest."))


    # -- settings ---------------------------------------------------------------------------------------
    def _settings_reply(self, user: User, note: str = "") -> Reply:
        out = Rich()
        if note:
            out.text(note).nl(2)
        out.b("Your settings").nl()
        when = "" if user.digest_weekday is None else f"weekly on {WEEKDAYS[user.digest_weekday].title()}s "
        out.text(f"Digest {when}at {user.digest_hour:02d}:00 {user.timezone}, up to {user.digest_size} papers, "
                 f"minimum score {user.min_score:.2f}").nl()
        out.text(f"Cross-lists: {'on' if user.cross_lists else 'off'} · Digests: "
                 f"{'paused' if user.paused else 'on'}").nl(2)
        out.text("Change: ").code("/settings hour 7").text(", ").code("/settings timezone Europe/Berlin")
        out.text(", ").code("/settings frequency weekly monday" if user.digest_weekday is None
                            else "/settings frequency daily")
        out.text(", ").code("/settings size 8").text(", ").code("/settings minscore 0.25").text(", ")
        out.code("/settings crosslists off").text(", ").code("/pause").text(", ").code("/resume")
        buttons = [[Button("▶ resume digests" if user.paused else "⏸ pause digests",
                           codes.setting("resume" if user.paused else "pause")),
                    Button("cross-lists: " + ("on → off" if user.cross_lists else "off → on"),
                           codes.setting("cross:off" if user.cross_lists else "cross:on"))]]
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
        if key in {"daily", "weekly"}:  # /settings weekly monday
            key, value = "frequency", " ".join(tokens)
        if key in {"frequency", "freq", "every"}:
            if not value:
                raise UserError("Say daily, or weekly and a weekday, e.g. /settings frequency weekly monday")
            return self._set(user, digest_weekday=parse_frequency(value))
        if not value:
            raise UserError(f"Give a value, e.g. {self._setting_example(key)}")
        if key == "hour":
            hour = value.strip().removesuffix(":00")
            return self._set(user, digest_hour=parse_int(hour, 0, 23, "The hour (in your timezone)",
                                                         "/settings hour 7"))
        if key == "timezone":
            return self._set(user, timezone=parse_timezone(value))
        if key == "size":
            return self._set(user, digest_size=parse_int(value, 1, MAX_DIGEST_SIZE, "The digest size (papers)",
                                                         "/settings size 8"))
        if key == "minscore":
            score = ascii_number(value, 0.0, 1.0)
            if score is None:
                raise UserError("The minimum score is between 0 and 1, e.g. /settings minscore 0.25")
            return self._set(user, min_score=score)
        if key == "crosslists":
            return self._set(user, cross_lists=int(_on_off(value)))
        raise UserError(f"I have no setting {render.clean(key, 30)!r}. Settings: hour, timezone, frequency, size, "
                        "minscore, crosslists, pause, resume. Send /settings to see yours.")

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
        return Reply.plain("Digests paused. /resume restarts them; commands keep working.")

    def cmd_resume(self, user: User, args: str) -> Reply:
        user = self.store.update_user(user.id, paused=0)
        when = "" if user.digest_weekday is None else f" on {WEEKDAYS[user.digest_weekday].title()}s"
        return Reply.plain(f"Digests on again{when}, at {user.digest_hour:02d}:00 {user.timezone}.")

    def _press_settings(self, user: User, action: str) -> list[Reply]:
        if action in {"pause", "resume"}:
            user = self.store.update_user(user.id, paused=int(action == "pause"))
            toast = "Digests paused" if action == "pause" else "Digests on"
        elif action.startswith("cross:"):
            user = self.store.update_user(user.id, cross_lists=int(action.endswith(":on")))
            toast = "Cross-lists " + ("on" if user.cross_lists else "off")
        else:
            raise UserError("This button is out of date; send /settings.")
        r = self._settings_reply(user)
        r.edit, r.toast = True, toast
        return [r]
