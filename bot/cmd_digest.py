"""The digest: ranking a day's papers (a weekly digest: a week's) for a user into one compact message, and the
messages for days when nothing matched or nothing was announced.

Papers by followed authors and papers matching alerts come first, with their reason as the why-line (the engine
puts them there: :mod:`recommender.ranking.must_include`). A weekly digest is keyed by the latest announcement day
it covers, like a daily one, so recording, re-sending and "never twice" work the same.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Protocol

from recommender.models import Paper
from recommender.store import User

from . import render
from .cmd_base import CommandsBase
from .reply import Reply
from .rich import Rich
from .schedule import WEEK, covered_days

log = logging.getLogger(__name__)

@dataclass
class DigestPlan:
    """A digest ready to send: its reply and what to log once it went out."""

    day: str
    reply: Reply
    items: list[tuple[str, int, float]] = field(default_factory=list)  # (paper id, rank, score)
    resent: bool = False  # a digest whose first sending was interrupted, sent again with a note saying so
    days: tuple[str, ...] = ()  # a weekly digest: the announcement days it covers (``day`` is the latest)


RESENT_NOTE = "↻ Re-sent after an interruption; you may have had this already."


class DigestItem(Protocol):
    """A paper of a digest: a ranked ``Recommendation``, or one read back from the delivery log."""

    @property
    def paper(self) -> Paper: ...

    @property
    def score(self) -> float: ...

    @property
    def why(self) -> str: ...


@dataclass
class _Stored:
    """A paper of a digest planned before an interruption (its why-line was not kept)."""

    paper: Paper
    score: float
    why: str = ""


class DigestCommands(CommandsBase):
    # -- digests ----------------------------------------------------------------------------------------
    def plan_digest(self, user: User, day: str, recs: Sequence[DigestItem],
                    days: Sequence[str] = ()) -> DigestPlan:
        """The compact digest message for ``recs`` (Recommendations) of announcement ``day`` (weekly: ``days``)."""
        if len(days) > 1:
            out = Rich().b(f"Your weekly arXiv digest, {days[0]} to {day}").nl()
        else:
            out = Rich().b(f"Your arXiv digest for {day}").nl()
        ids = [r.paper.id for r in recs]
        preds = self._predictions(ids)
        unpredicted = [i for i in ids if i not in preds]
        if unpredicted:  # not reached yet by ingestion or the terminal's warm-up: classify these few now
            self._classify_new(unpredicted)
            preds = self._predictions(ids)
        out.nl()
        for k, r in enumerate(recs, 1):
            render.paper_card(out, r.paper, k, why=r.why, predicted=preds.get(r.paper.id, ()))
            out.nl()
        out.i("👍/👎 teach me your taste; 🔎 shows more like a paper.")
        liked, disliked = set(self.store.liked_ids(user.id)), set(self.store.disliked_ids(user.id))
        buttons = render.digest_buttons([(k, r.paper.id) for k, r in enumerate(recs, 1)], liked, disliked)
        items = [(r.paper.id, k, float(r.score)) for k, r in enumerate(recs, 1)]
        return DigestPlan(day, Reply(out, buttons=buttons), items, days=tuple(days))

    def empty_digest(self, user: User, day: str, days: Sequence[str] = ()) -> Reply:
        what = f"arXiv's announcements of {days[0]} to {day}" if len(days) > 1 else f"arXiv's announcement of {day}"
        out = Rich().text(f"Nothing in {what} matched your profile closely enough")
        out.text(f" (minimum score {user.min_score:.2f}).").nl()
        if not self._has_profile(user):
            out.text("Tell me what you like first: /follow, /interests or /like.")
        else:
            out.text("Lower the bar with ").code("/settings minscore 0.2").text(" or follow more categories.")
        return Reply(out)

    def build_digest(self, user: User, day: str, recs: Sequence[DigestItem] | None = None,
                     days: Sequence[str] = ()) -> DigestPlan:
        """Rank ``day``'s papers (``days``: a weekly digest's days) for ``user`` (or take ``recs`` ranked already);
        an empty plan (no items) carries the 'nothing matched' reply."""
        days = tuple(days) if len(days) > 1 else ()
        if recs is None:
            recs = list(self.engine.digest(user.id, day, n=user.digest_size, days=days or None))
        if not recs:
            return DigestPlan(day, self.empty_digest(user, day, days), [], days=days)
        return self.plan_digest(user, day, recs, days)

    def build_digests(self, users: Sequence[User], day: str,
                      days: Sequence[str] = ()) -> dict[int, DigestPlan]:
        """The plans of many users' digests of ``day`` (``days``: a weekly digest's days), ranked in one batched
        pass (``Engine.digests``)."""
        days = tuple(days) if len(days) > 1 else ()
        ranked = self.engine.digests([u.id for u in users], day, days=days or None)
        return {u.id: self.build_digest(u, day, ranked.get(u.id, []), days) for u in users}

    def week_days(self, user: User, day: str) -> tuple[str, ...]:
        """The announcement days /digest covers for a weekly user: the week up to ``day`` (() for daily users)."""
        if user.digest_weekday is None:
            return ()
        start = (date.fromisoformat(day) - timedelta(days=WEEK)).isoformat()
        return covered_days(self.store.announcement_days_between(start, day), day, None)

    def resend_digest(self, user: User, day: str) -> DigestPlan | None:
        """The digest of ``day`` whose sending was interrupted (status ``sending``), again, from its recorded
        items and marked as a possible repeat; None when no items were recorded."""
        items = self.store.digest_items(user.id, day)
        papers = self.store.get_papers([pid for pid, _, _ in items])
        recs = [_Stored(papers[pid], score) for pid, _, score in items if pid in papers]
        if not recs:
            return None
        plan = self.plan_digest(user, day, recs)
        plan.reply.text = Rich().i(RESENT_NOTE).nl(2).extend(plan.reply.text)
        plan.resent = True
        return plan

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
            out = Rich().text("I don't know your taste yet. Follow categories (").code("/follow cs.LG")
            out.text("), describe your interests (").code("/interests ...").text(") or like a paper (")
            out.code("/like ID").text("), then ask again.")
            return Reply(out)
        plan = self.build_digest(user, day, days=self.week_days(user, day))
        if plan.items:
            plan.reply.delivery = plan
            return plan.reply
        seen = self.store.delivered_ids(user.id, day)
        if seen:
            return Reply.plain(f"You have had the {len(seen)} best papers of {day} already, and nothing else "
                               "matched. The next digest comes with arXiv's next announcement.")
        return plan.reply
