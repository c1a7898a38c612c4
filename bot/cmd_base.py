"""The common ground of the bot's commands: who is calling, input errors, the collaborators, helpers.

:class:`CommandsBase` holds the settings and the store and loads the recommender engine and the classifier on
first use; its helpers parse ids, look papers up (fetching unknown ones from arXiv, then classifying them),
and describe a user's profile. The command groups (``cmd_papers``, ``cmd_profile``, ``cmd_digest``) build on
it and :class:`bot.commands.Commands` puts them together.
"""
from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from recommender.config import Settings
from recommender.ids import InvalidArxivId, parse_arxiv_id
from recommender.interfaces import CategoryClassifier, RecommenderEngine
from recommender.models import Paper
from recommender.store import Store, User

from . import render
from .inputs import ascii_int
from .rich import Rich

log = logging.getLogger(__name__)

MAX_ARG_CHARS = 4000  # a title plus the longest arXiv abstract fit comfortably
MAX_IDS = 20
MAX_INTERESTS = 500
MAX_SIMILAR = 20
MAX_LIKES_PAGE = 10_000
LIKES_PAGE = 10


@dataclass(frozen=True)
class Caller:
    """Who is talking: a user id (Telegram's, or 1 in the terminal) and where to answer.

    ``private`` is False when the message or button press came from a group or channel: such a caller is
    answered, but never becomes the chat a user's digests go to (a forged press in a group must not move a
    user's chat)."""

    user_id: int
    chat_id: int | None = None
    name: str = ""
    private: bool = True
    group: bool = False  # a group chat speaking as itself: user_id is the group's chat id (see bot.cmd_group)
    admin: bool = False  # in a group: the member who wrote is one of its admins (checked only when it matters)


class UserError(Exception):
    """Input the user can fix; the message is shown to them as it is."""


def parse_int(text: str, lo: int, hi: int, what: str, example: str) -> int:
    """A small whole number the user typed, ASCII digits only, in ``lo..hi``; else a UserError that says
    what a good value looks like (e.g. ``parse_int(v, 1, 20, "The digest size", "/settings size 8")``)."""
    value = ascii_int(text, lo, hi)
    if value is None:
        raise UserError(f"{what} is a whole number from {lo} to {hi}, e.g. {example}")
    return value


class CommandsBase:
    """State and helpers shared by every command. Thread-confined: call it from one thread at a time."""

    def __init__(self, settings: Settings, store: Store,
                 engine_factory: Callable[[], RecommenderEngine] | None = None,
                 classifier_factory: Callable[[], CategoryClassifier] | None = None) -> None:
        self.settings = settings
        self.store = store
        self._engine_factory = engine_factory or self._default_engine
        self._classifier_factory = classifier_factory or self._default_classifier
        self._engine: RecommenderEngine | None = None
        self._engine_lock = threading.Lock()  # one Engine per Commands, whichever thread asks first
        self._no_classifier = False  # set once loading the classifier failed
        self.scheduled = True  # digests are sent at the user's hour (False in the terminal: on demand only)

    # -- collaborators, loaded on first use -------------------------------------------------------------
    def _default_engine(self) -> RecommenderEngine:
        from recommender.engine.core import Engine
        # its arXiv look-ups are interactive (ArxivClient.interactive: fewer retries, shorter timeout) and keep
        # the one shared politeness budget of api_delay seconds
        return Engine(self.settings, self.store)

    def _default_classifier(self) -> CategoryClassifier:
        from recommender.classification.classify import get_classifier
        return get_classifier(Path(self.settings.classifier_dir) if self.settings.classifier_dir else None)

    @property
    def engine(self) -> RecommenderEngine:
        """The recommender engine, created once on first use and shared by every thread (the terminal's
        warm-up uses this one too, so each vector index has one writer)."""
        with self._engine_lock:
            if self._engine is None:
                try:
                    self._engine = self._engine_factory()
                except Exception:
                    log.exception("the recommender engine could not be loaded")
                    raise UserError("Recommendations are not available right now (the engine could not be "
                                    "loaded); the operator has been told.") from None
            return self._engine

    @engine.setter
    def engine(self, engine: RecommenderEngine) -> None:
        with self._engine_lock:
            self._engine = engine

    @property
    def loaded_engine(self) -> RecommenderEngine | None:
        """The engine if it has been created, else None (never creates it)."""
        return self._engine

    @cached_property
    def classifier(self) -> CategoryClassifier:
        return self._classifier_factory()

    @cached_property
    def _groups(self) -> list[tuple[str, list[str]]]:
        return sorted(self.store.category_groups().items())

    @cached_property
    def _names(self) -> dict[str, str]:
        return self.store.category_names()

    # -- entry points -----------------------------------------------------------------------------------
    def user(self, caller: Caller) -> User:
        """The caller's stored user (created on first contact). Only a private chat binds: it becomes the
        chat digests go to and reactivates a user who had blocked the bot; a group or channel changes nothing."""
        s = self.settings
        chat_id = caller.chat_id if caller.private else None
        user = self.store.get_user(caller.user_id) or self.store.ensure_user(
            caller.user_id, chat_id=chat_id, name=caller.name or None, timezone=s.digest_timezone,
            digest_hour=s.digest_hour, digest_size=s.digest_size, min_score=s.min_score)
        if not caller.private:
            return user
        changes: dict[str, object] = {}
        if not user.active:
            changes["active"] = 1  # they talk to us again, so they unblocked the bot
        if chat_id is not None and user.chat_id != chat_id:
            changes["chat_id"] = chat_id
        return self.store.update_user(user.id, **changes) if changes else user


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
        """Store predicted categories for ``ids`` (papers just fetched from arXiv, or a digest's papers that
        ingestion or the terminal's warm-up has not reached yet); skipped when no classifier is installed."""
        if not ids or self._no_classifier:
            return
        try:
            classifier = self.classifier
        except Exception as exc:  # predictions decorate replies; a missing model must not fail the command
            log.warning("no category predictions: the classifier could not be loaded (%s)", exc)
            self._no_classifier = True  # said once, not on every digest
            return
        try:
            from recommender.engine.pipeline import classify_papers
            classify_papers(self.store, classifier, list(ids))
        except Exception:
            log.warning("could not classify papers %s", list(ids), exc_info=True)

    @staticmethod
    def _missing_text(missing: Sequence[str]) -> str:
        return (f"I could not find {', '.join(missing)} on arXiv (check the id, or try again later if arXiv "
                "is unreachable).")

    def _has_profile(self, user: User) -> bool:
        return bool(user.categories or user.interests or self.store.liked_ids(user.id)
                    or self.store.followed_authors(user.id) or self.store.alerts(user.id))

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

    def _button_paper(self, pid: str) -> Paper:
        """The paper a button names (fetched if the store lost it); UserError if it is gone."""
        found, missing = self._papers([pid])
        if missing:
            raise UserError("I no longer know that paper; send its id to see it again.")
        return found[pid]
