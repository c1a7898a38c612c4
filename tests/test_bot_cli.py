"""The bot's subcommands of ``arxiv-digest`` (run, deliver, users) and the token never reaching a log."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bot.telegram import protect_token
from recommender.cli.main import main
from recommender.store import Store
from tests.support.fake_telegram import TOKEN, FakeTelegram


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "var"
    monkeypatch.setenv("ARXIV_DIGEST_HOME", str(home))
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    return home


def test_subcommands_are_registered(home: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "run" in out and "deliver" in out and "users" in out


def test_users_lists_state(home: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["users"]) == 0
    assert "no users yet" in capsys.readouterr().out
    home.mkdir(parents=True, exist_ok=True)
    with Store(home / "arxiv_digest.sqlite") as store:
        store.ensure_user(5, chat_id=5, timezone="Asia/Tokyo", digest_hour=7)
        store.set_user_categories(5, ["cs.LG"])
        store.ensure_user(6, chat_id=6)
        store.update_user(6, active=0)
    assert main(["users"]) == 0
    out = capsys.readouterr().out
    assert "07:00 Asia/Tokyo" in out and "cs.LG" in out and "blocked" in out
    assert main(["users", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [5, 6]


def test_deliver_needs_a_token_and_runs_once_with_one(home: Path, capsys: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["deliver"]) == 2
    assert "TELEGRAM_BOT_TOKEN" in capsys.readouterr().err
    with FakeTelegram() as fake:
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("TELEGRAM_API_URL", fake.base_url)
        assert main(["deliver", "--now", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["due"] == 0 and report["failed"] == 0
        assert any(m == "getMe" for m, _ in fake.calls)


def test_the_token_is_redacted_from_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    protect_token(TOKEN)
    logging.getLogger("anything").info("POST http://127.0.0.1/bot%s/getMe failed", TOKEN)
    assert TOKEN not in caplog.text and "<token>" in caplog.text
