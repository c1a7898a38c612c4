"""The bot's digests follow the product's digest rules, because its tests run the production Engine (with the
hashed-words test embedder): cross-lists only for users who want them, the minimum score thins a day instead of
lowering the bar, and a user who only follows categories still gets that day's papers."""
from __future__ import annotations

import dataclasses

import pytest

from bot.commands import Caller, Commands
from bot.reply import Reply
from recommender.config import Settings
from recommender.models import Paper
from recommender.store import Store
from tests.support.bot_fixtures import LATEST, KeywordClassifier, hash_engine


@pytest.fixture
def commands(settings: Settings, demo_store: Store) -> Commands:
    return Commands(settings, demo_store, engine_factory=lambda: hash_engine(settings, demo_store),
                    classifier_factory=KeywordClassifier)


def plain(replies: list[Reply]) -> str:
    return "\n".join(r.text.plain for r in replies)


def test_a_user_who_only_follows_categories_gets_the_days_papers(commands: Commands) -> None:
    me = Caller(11, 11)
    commands.handle(me, "/follow cs.CL")
    text = plain(commands.handle(me, "/digest"))
    assert f"Your arXiv digest for {LATEST}" in text
    assert "new in the categories you follow" in text  # ranked by the categories' names, no threshold


def test_the_minimum_score_thins_a_day_instead_of_lowering_the_bar(commands: Commands) -> None:
    me = Caller(12, 12)
    commands.handle(me, "/interests large language models and their reasoning")
    commands.store.update_user(12, min_score=0.99)
    text = plain(commands.handle(me, "/digest"))
    assert "matched your profile closely enough" in text and "minimum score 0.99" in text
    commands.store.update_user(12, min_score=0.0)
    assert f"Your arXiv digest for {LATEST}" in plain(commands.handle(me, "/digest"))


def test_cross_lists_only_for_users_who_want_them(commands: Commands, demo_papers: list[Paper]) -> None:
    store = commands.store
    # the demo day has no cross-lists: cross-list three papers of other days to cs.LG on it
    older = [p for p in demo_papers if p.announced != LATEST and "cs.LG" not in p.categories][:3]
    store.upsert_papers([dataclasses.replace(p, id=f"2606.9{k:04d}", categories=[*p.categories, "cs.LG"],
                                             announced=LATEST, announce_type="cross") for k, p in enumerate(older)])
    new = set(store.announced_ids(LATEST, types=("new",), categories=["cs.LG"]))
    cross = set(store.announced_ids(LATEST, types=("cross",), categories=["cs.LG"]))
    assert new and len(cross) == 3
    me = Caller(13, 13)
    commands.handle(me, "/follow cs.LG")
    commands.handle(me, "/interests neural networks")
    store.update_user(13, min_score=0.0)
    every = len(new) + len(cross)
    assert {r.paper.id for r in commands.engine.digest(13, LATEST, n=every)} == new | cross
    commands.handle(me, "/settings cross off")
    assert store.get_user(13).cross_lists is False
    assert {r.paper.id for r in commands.engine.digest(13, LATEST, n=every)} == new
