"""Quick checks: after a digest, one short question about the one or two papers the ranker is least sure of.

Among the day's candidates that were not sent (nor rated), the papers whose scores sit nearest the user's
minimum score (``recommender.ranking.borderline``) are the ones a 👍 or 👎 teaches most. :meth:`quick_check`
builds that message (its buttons are ordinary like/dislike buttons, so a press is recorded like any other)
and records it in the store *before* it is sent (``claim_quickcheck``), so each digest gets at most one quick
check, never a repeat after a crash or restart. ``/settings quickcheck on|off`` chooses; by default they are on
once the user is a week old. /digest on request attaches the quick check as its reply's ``followup`` (sent after
the digest went out and was recorded); the delivery run sends it after each digest it recorded.
"""
from __future__ import annotations

import logging

from recommender.ranking.borderline import borderline
from recommender.ranking.digest import digest_candidates
from recommender.store import User

from . import buttons as codes
from . import render
from .cmd_digest import DigestCommands, DigestPlan
from .cmd_profile import ProfileCommands, _on_off
from .reply import Button, Reply
from .rich import Rich

log = logging.getLogger(__name__)

QUICK_CHECK_PAPERS = 2
QUICK_CHECK_KEYS = {"quickcheck", "quickchecks", "quick-check", "quick_check", "qc"}


class QuickCheckCommands(ProfileCommands, DigestCommands):
    def quick_check(self, user: User, day: str) -> Reply | None:
        """The quick check to send after ``user``'s digest of ``day``, recorded as asked; None when it is off,
        was asked already, or nothing is borderline (no personal profile, no candidates left)."""
        try:
            if not self.store.quickcheck_enabled(user.id) or self.store.quickcheck(user.id, day) is not None:
                return None
            likes, dislikes = self.store.liked_ids(user.id), self.store.disliked_ids(user.id)
            if not likes and not user.interests:
                return None  # ranked by categories only: there is no threshold to be unsure about
            cands = digest_candidates(self.store, user.id, day, user.categories, user.cross_lists)
            if not cands:
                return None
            recs = self.engine.recommend(likes, dislikes, user.interests, candidates=cands, n=len(cands),
                                         min_score=None)
            scores = [r.similarity if r.similarity is not None else r.score for r in recs]
            picks = [recs[i] for i in borderline(scores, user.min_score, QUICK_CHECK_PAPERS)]
            if not picks or not self.store.claim_quickcheck(user.id, day, [r.paper.id for r in picks]):
                return None
        except Exception:  # a quick check is a bonus: never fail a digest over it
            log.exception("quick check for user %s day %s failed", user.id, day)
            return None
        out = Rich().b("Quick check").text(": would you want these? A tap teaches me your taste fastest.").nl(2)
        preds = self._predictions([r.paper.id for r in picks])
        for k, r in enumerate(picks, 1):
            render.paper_card(out, r.paper, k, predicted=preds.get(r.paper.id, ()))
            out.nl()
        out.i("Turn these off with /settings quickcheck off.")
        buttons = [[Button(f"👍 {k}", codes.like(k, r.paper.id)), Button(f"👎 {k}", codes.dislike(k, r.paper.id))]
                   for k, r in enumerate(picks, 1)]
        return Reply(out, buttons=buttons)

    def cmd_digest(self, user: User, args: str) -> list[Reply] | Reply:
        out = super().cmd_digest(user, args)
        if isinstance(out, Reply) and isinstance(out.delivery, DigestPlan) and out.delivery.items \
                and out.followup is None:
            day = out.delivery.day

            def followup() -> list[Reply]:
                fresh = self.store.get_user(user.id) or user
                check = self.quick_check(fresh, day)
                return [check] if check is not None else []
            out.followup = followup
        return out

    # -- the setting ------------------------------------------------------------------------------------
    def cmd_settings(self, user: User, args: str) -> Reply:
        tokens = args.split()
        if tokens and tokens[0].lower().rstrip(":=") in QUICK_CHECK_KEYS:
            if len(tokens) < 2:
                return self._settings_reply(user, "Say on or off, e.g. /settings quickcheck off")
            self.store.set_quickcheck(user.id, _on_off(" ".join(tokens[1:])))
            return self._settings_reply(self.store.get_user(user.id) or user, "Saved.")
        return super().cmd_settings(user, args)

    def _settings_reply(self, user: User, note: str = "") -> Reply:
        reply = super()._settings_reply(user, note)
        on = self.store.quickcheck_enabled(user.id)
        default = self.store.quickcheck_choice(user.id) is None
        reply.text.nl(2).text("Quick checks after a digest: " + ("on" if on else "off")
                              + (" (on by default after your first week)" if default and not on else "") + " · ")
        reply.text.code(f"/settings quickcheck {'off' if on else 'on'}")
        return reply
