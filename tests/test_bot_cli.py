"""The bot's subcommands of ``arxiv-digest`` (run, deliver, users) and the token never reaching any output:
log lines, tracebacks (logged or uncaught, in any thread), stdout, stderr or ``bot.log``."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from telegram.error import InvalidToken
from telegram.ext import ApplicationBuilder

from bot.telegram import protect_token
from recommender.cli.main import main
from recommender.store import Store
from tests.support.bot_fixtures import ROOT
from tests.support.fake_telegram import TOKEN, FakeTelegram

SECRET = TOKEN.partition(":")[2]  # the part after the bot id: finding it anywhere is a leak
OTHER_TOKEN = "654321:a-token-the-server-does-know"


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
    assert (home / "bot.log").exists()  # in Telegram mode the log also goes to the state directory


def test_the_token_is_redacted_from_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    protect_token(TOKEN)
    logging.getLogger("anything").info("POST http://127.0.0.1/bot%s/getMe failed", TOKEN)
    assert TOKEN not in caplog.text and "<token>" in caplog.text


@pytest.mark.parametrize("command", [["run"], ["deliver", "--now"]])
def test_a_rejected_token_is_one_clear_line_and_printed_nowhere(command: list[str], tmp_path: Path) -> None:
    home = tmp_path / "var"
    with FakeTelegram(token=OTHER_TOKEN) as fake:  # answers 401 to our token, as Telegram does to a bad one
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": fake.base_url,
               "ARXIV_DIGEST_HOME": str(home)}
        proc = subprocess.run([sys.executable, "-m", "recommender.cli.main", "-v", *command], cwd=ROOT, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    log_file = (home / "bot.log").read_text()
    for where, text in (("stdout", proc.stdout), ("stderr", proc.stderr), ("bot.log", log_file)):
        assert SECRET not in text, f"the token leaked into {where}"
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.count("Telegram rejected the bot token") == 1 and "Traceback" not in proc.stderr
    assert "Telegram rejected the bot token" in log_file


def test_tracebacks_and_ptb_errors_are_scrubbed_in_logs(tmp_path: Path) -> None:
    protect_token(TOKEN)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with FakeTelegram(token=OTHER_TOKEN) as fake:
            app = ApplicationBuilder().token(TOKEN).base_url(fake.base_url).build()
            with pytest.raises(InvalidToken) as rejected:
                asyncio.run(app.initialize())  # PTB's own error: "The token `...` was rejected by the server."
        logger.error("start-up failed", exc_info=rejected.value)
        try:
            try:
                raise ConnectionError(f"GET https://api.telegram.org/bot{TOKEN}/getMe")
            except ConnectionError as inner:
                raise RuntimeError("while polling") from inner
        except RuntimeError:
            logger.exception("polling failed for %s", TOKEN)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert SECRET not in text
    assert "was rejected by the server" in text and "while polling" in text and "<token>" in text
    assert "Traceback" in text  # the tracebacks are kept, only scrubbed


UNCAUGHT = """
import sys, threading
from bot.telegram.redact import protect_token
token = sys.argv[1]
protect_token(token)
def fail():
    raise RuntimeError(f"thread failed with {token}")
worker = threading.Thread(target=fail)
worker.start()
worker.join()
try:
    raise ConnectionError(f"GET /bot{token}/getMe")
except ConnectionError as exc:
    raise ValueError(f"bad token {token}") from exc
"""


def test_uncaught_errors_are_scrubbed() -> None:
    proc = subprocess.run([sys.executable, "-c", UNCAUGHT, TOKEN], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1
    assert SECRET not in proc.stderr
    assert "RuntimeError: thread failed with <token>" in proc.stderr
    assert "ConnectionError: GET /bot<token>/getMe" in proc.stderr and "ValueError: bad token <token>" in proc.stderr
