"""Commands about people and phrases to watch: followed authors (``/follow author NAME``, ``/unfollow author NAME``)
and keyword alerts (``/alert PHRASE``, ``/alerts``, ``/unalert PHRASE``).

A name is resolved against the authors of the stored papers (:mod:`recommender.store.follows` folds case, accents,
initials and "Surname, Given" order): one clear match is followed at once; an ambiguous name (``C. Bonanno`` when
there are two) or an unknown one (a typo) gets the closest known authors as buttons (``FA:<author id>``). With
no argument, ``/follow`` also lists the followed authors and suggests authors who recur among the user's likes.
New papers by followed authors and papers matching an alert are always in the digest
(:mod:`recommender.ranking.must_include`); this module only manages what is followed.
"""
from __future__ import annotations

import difflib
import logging

from recommender.store import User
from recommender.store.follows import (
    MAX_ALERT_CHARS,
    MAX_ALERT_WORDS,
    MAX_ALERTS,
    KnownAuthor,
    LimitReached,
    alert_words,
    split_name,
)
from recommender.store.follows import compatible as names_compatible

from . import buttons as codes
from . import render
from .cmd_base import CommandsBase, UserError
from .inputs import ascii_int, visible_text
from .reply import Button, Reply
from .rich import Rich

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 100
MAX_CHOICES = 6  # author buttons offered for an ambiguous or unknown name
QUOTES = "\"'“”„‘’«»"
AUTHOR_WORDS = {"author", "authors", "person"}


def _unquote(text: str) -> str:
    text = visible_text(text)
    while len(text) >= 2 and text[0] in QUOTES and text[-1] in QUOTES:
        text = text[1:-1].strip()
    return text.strip(QUOTES).strip()


def _label(a: KnownAuthor) -> str:
    return render.clean(f"{a.name} ({a.papers} paper{'s' if a.papers != 1 else ''})", 60)


def author_args(args: str) -> str | None:
    """The name after ``author`` in ``/follow author NAME`` (``""`` when none), None when not about an author."""
    head, _, rest = args.strip().partition(" ")
    if head.lower().rstrip(":") not in AUTHOR_WORDS:
        return None
    return rest.strip()


class FollowCommands(CommandsBase):
    # -- authors ----------------------------------------------------------------------------------------
    def _clean_name(self, args: str) -> str:
        name = _unquote(args)
        if len(name) > MAX_NAME_CHARS:
            raise UserError(f"That name is {len(name)} characters long; an author's name is at most "
                            f"{MAX_NAME_CHARS}, e.g. /follow author Claudio Bonanno")
        if not split_name(name)[1] or sum(ch.isalpha() for ch in name) < 2:
            raise UserError("Give an author's name, e.g. /follow author Claudio Bonanno (or Bonanno, Claudio; "
                            "initials work too).")
        return name

    def _candidates(self, name: str) -> tuple[list[KnownAuthor], bool]:
        """Known authors ``name`` may mean, most papers first, and whether the first is a clear match (the
        same given names and surname, or the only person the name can mean)."""
        self.store.sync_author_keys()
        given, surname = split_name(name)
        found = [(a, g) for a, g, _ in self.store.authors_by_surname([surname]) if names_compatible(given, g)]
        words = name.replace(",", " ").split()
        if not found and "," not in name and len(words) >= 2:  # "Bonanno Claudio": surname first, no comma
            given, surname = split_name(words[0] + ", " + " ".join(words[1:]))
            found = [(a, g) for a, g, _ in self.store.authors_by_surname([surname]) if names_compatible(given, g)]
        if not found:
            return [], False
        exact = [a for a, g in found if g == given and any(len(w) > 1 for w in given)]
        if exact:
            return exact[:1], True
        people = {g for _, g in found}
        # one person under several spellings ("C. Bonanno", "Claudio Bonanno"): the fullest name of them
        if len(people) == 1 or all(names_compatible(x, y) for x in people for y in people):
            best = max(found, key=lambda ag: (len(" ".join(ag[1])), ag[0].papers))[0]
            return [best], True
        return [a for a, _ in found][:MAX_CHOICES], False

    def _near(self, name: str) -> list[KnownAuthor]:
        """Known authors whose surname is close to the one typed (a typo), most papers first."""
        given, surname = split_name(name)
        close = difflib.get_close_matches(surname, self.store.surnames_near(surname), n=4, cutoff=0.75)
        if not close:
            return []
        found = self.store.authors_by_surname(close)
        fitting = [a for a, g, _ in found if names_compatible(given, g)]
        return (fitting or [a for a, _, _ in found])[:MAX_CHOICES]

    def _follow(self, user: User, name: str) -> Reply:
        try:
            added = self.store.follow_author(user.id, name)
        except LimitReached as exc:
            raise UserError(f"You follow {exc}, the most I keep; /unfollow author NAME first.") from None
        except ValueError:
            raise UserError(f"I can't follow {render.clean(name, 60)!r}: an author's name needs letters.") from None
        if not added:
            return Reply.plain(f"You already follow {render.clean(name, 80)}.")
        out = Rich().text(f"Following {render.clean(name, 80)}: their new papers are always in your digest, "
                          "whatever their category or score.").nl()
        out.text("Your authors: /follow · stop with ").code(f"/unfollow author {render.clean(name, 60)}")
        return Reply(out)

    def follow_author(self, user: User, args: str) -> Reply:
        if not args.strip():
            return self.authors_overview(user) or Reply(
                Rich().text("You follow no authors yet. Follow one with ").code("/follow author Claudio Bonanno"))
        name = self._clean_name(args)
        found, clear = self._candidates(name)
        if clear:
            return self._follow(user, found[0].name)
        shown = render.clean(name, 60)
        if found:
            out = Rich().text(f"Several authors could be {shown}; tap the one to follow:")
            buttons = [[Button(_label(a), codes.follow_author(a.id))] for a in found]
            return Reply(out, buttons=buttons)
        near = self._near(name)
        papers = self.store.count_papers()
        if near:
            out = Rich().text(f"I know no author {shown} in the {papers:,} papers I hold. Did you mean one of these?")
            return Reply(out, buttons=[[Button(_label(a), codes.follow_author(a.id))] for a in near])
        return Reply(Rich().text(f"I know no author {shown} in the {papers:,} papers I hold. Check the spelling "
                                 "(initials and \u201cSurname, Given\u201d work), e.g. ")
                     .code("/follow author Claudio Bonanno"))

    def unfollow_author(self, user: User, args: str) -> Reply:
        followed = self.store.followed_authors(user.id)
        if not args.strip():
            if not followed:
                return Reply.plain("You follow no authors.")
            return Reply.plain("You follow " + ", ".join(f.name for f in followed) + ". Say which to drop, e.g. "
                               f"/unfollow author {followed[0].name}")
        name = self._clean_name(args)
        gone = self.store.unfollow_authors(user.id, name)
        if not gone:
            have = ", ".join(f.name for f in followed) or "nobody"
            return Reply.plain(f"You were not following {render.clean(name, 60)}. You follow: {have}.")
        return Reply.plain("Unfollowed " + ", ".join(gone) + ".")

    def authors_overview(self, user: User) -> Reply | None:
        """The authors the user follows, and authors recurring among their likes to follow with a tap; None when
        there is neither."""
        followed = self.store.followed_authors(user.id)
        keys = [(f.given, f.surname) for f in followed]
        suggested = []
        for a in self.store.recurring_authors(self.store.liked_ids(user.id), min_papers=2, limit=10):
            g, s = split_name(a.name)
            if not any(s == fs and names_compatible(g, fg) for fg, fs in keys):
                suggested.append(a)
        suggested = suggested[:5]
        if not followed and not suggested:
            return None
        out = Rich()
        if followed:
            out.b("Authors you follow: ").text(", ".join(f.name for f in followed)).nl()
            out.text("Their new papers are always in your digest. Stop with ").code("/unfollow author NAME").nl()
        if suggested:
            if followed:
                out.nl()
            out.b("Authors in several of your likes").text(" (tap to follow):")
        buttons = [[Button(render.clean(f"+ {a.name} ({a.papers} liked)", 60), codes.follow_author(a.id))]
                   for a in suggested]
        return Reply(out, buttons=buttons)

    def _press_author(self, user: User, author_id: int) -> list[Reply]:
        author = self.store.author(author_id)
        if author is None:
            raise codes.StaleButton("I no longer know that author; send /follow author NAME.")
        reply = self._follow(user, author.name)
        reply.toast = render.clean(f"Following {author.name}", 60)
        return [reply]

    # -- alerts -----------------------------------------------------------------------------------------
    def _alerts_reply(self, user: User, note: str = "") -> Reply:
        alerts = self.store.alerts(user.id)
        out = Rich()
        if note:
            out.text(note).nl(2)
        if not alerts:
            out.text("You have no alerts. Set one with ").code("/alert cathetus rule").text(": new papers whose "
                                                                                         "title or abstract contains "
                                                                                         "the phrase are always in "
                                                                                         "your digest.")
            return Reply(out)
        out.b(f"Your alerts ({len(alerts)} of {MAX_ALERTS})").nl()
        for k, a in enumerate(alerts, 1):
            out.text(f"{k}. \u201c{a.phrase}\u201d").nl()
        out.text("Remove one with ").code(f"/unalert {alerts[0].phrase}").text(" or ").code("/unalert 1")
        return Reply(out)

    def cmd_alert(self, user: User, args: str) -> Reply:
        if not args.strip():
            return self._alerts_reply(user)
        phrase = _unquote(args)
        if len(phrase) > MAX_ALERT_CHARS:
            raise UserError(f"Keep an alert under {MAX_ALERT_CHARS} characters: a word or a short phrase, e.g. "
                            "/alert cathetus rule")
        words = alert_words(phrase)
        if sum(len(w) for w in words) < 3 or not any(ch.isalpha() for w in words for ch in w):
            raise UserError("An alert needs a word or a phrase to look for, e.g. /alert cathetus rule")
        if len(words) > MAX_ALERT_WORDS:
            raise UserError(f"An alert is a phrase of at most {MAX_ALERT_WORDS} words; that has {len(words)}.")
        try:
            added = self.store.add_alert(user.id, phrase)
        except LimitReached:
            raise UserError(f"You have {MAX_ALERTS} alerts, the most I keep; remove one with /unalert first "
                            "(/alerts lists them).") from None
        shown = render.clean(phrase, 80)
        if not added:
            return self._alerts_reply(user, f"You already have an alert for \u201c{shown}\u201d.")
        return self._alerts_reply(user, f"Alert set: new papers whose title or abstract contains \u201c{shown}\u201d "
                                        "(any case, whole words) are always in your digest.")

    def cmd_alerts(self, user: User, args: str) -> Reply:
        return self._alerts_reply(user)

    def cmd_unalert(self, user: User, args: str) -> Reply:
        alerts = self.store.alerts(user.id)
        if not args.strip():
            if not alerts:
                return Reply.plain("You have no alerts.")
            return self._alerts_reply(user, "Say which alert to remove, by phrase or number.")
        number = ascii_int(args, 1, len(alerts)) if alerts else None
        phrase = alerts[number - 1].phrase if number is not None else _unquote(args)
        removed = self.store.remove_alert(user.id, phrase)
        if removed is None:
            return self._alerts_reply(user, f"You have no alert \u201c{render.clean(phrase, 80)}\u201d.")
        return self._alerts_reply(user, f"Removed the alert \u201c{removed}\u201d.")
