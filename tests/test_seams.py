"""How the bot reaches the library's engine through its seam (``recommender.interfaces.RecommenderEngine``):
after a background job the engine, if the commands loaded one, picks up what the job published; an engine
nobody loaded yet is not created for that."""
from __future__ import annotations

import pytest

from bot.telegram import Runtime
from tests.support.bot_fixtures import run


def test_a_background_job_makes_the_loaded_engine_reload(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    assert rt.commands.loaded_engine is None
    assert run(rt.in_background(lambda: 41 + 1)) == 42
    assert rt.commands.loaded_engine is None  # not created just to be reloaded
    engine = rt.commands.engine
    reloads: list[bool] = []

    def reload_if_changed() -> bool:
        reloads.append(True)
        return False

    monkeypatch.setattr(engine, "reload_if_changed", reload_if_changed)
    run(rt.in_background(lambda: None))
    assert reloads == [True]
