"""Deliveries survive a kill -9: ``arxiv-digest deliver --now`` runs in a subprocess against the fake Bot API
answering slowly, is SIGKILLed mid-run, and a second run completes. Every user gets their digest, nobody gets an
unmarked duplicate, and the marked repeats are at most the digests in flight at the kill. Also: a digest
Telegram refuses (400) is repaired, or given up on visibly."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.telegram import Deliverer, Runtime, build_application
from recommender.cli.main import main
from recommender.config import Settings
from recommender.store import Store
from tests.support.bot_fixtures import ROOT, copy_home, run
from tests.support.fake_telegram import TOKEN, FakeTelegram

# `arxiv-digest deliver --now` with the bot tests' fast stand-ins for the embedding model and the classifier
DELIVER = """
import sys
import bot.cmd_base as cb
import recommender.engine.core as core
from tests.support.bot_fixtures import HashEmbedder, KeywordClassifier
core.load_embedder = lambda settings, backend=None: HashEmbedder()
cb.CommandsBase._default_classifier = lambda self: KeywordClassifier()
from recommender.cli.main import main
sys.exit(main(["deliver", "--now", "--json"]))
"""
MARK = "↻ Re-sent after an interruption"
USERS = 80


def _deliver(home: Path, fake: FakeTelegram) -> subprocess.Popen[str]:
    env = dict(os.environ, ARXIV_DIGEST_HOME=str(home), TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_URL=fake.base_url,
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", DELIVER], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _users(store: Store, n: int, start: int = 20_000) -> list[int]:
    ids = list(range(start, start + n))
    for uid in ids:
        store.ensure_user(uid, chat_id=uid)
        store.set_user_categories(uid, ["cs.LG"])
        store.update_user(uid, interests="language models reasoning", min_score=0.0)
    return ids


@pytest.mark.slow  # two CLI processes over the demo papers: ~30-75 s on a shared machine
def test_kill_9_mid_run_then_a_second_run(settings: Settings, demo_home: Path) -> None:
    copy_home(demo_home, settings)
    with Store(settings.db_path, taxonomy=settings.taxonomy_path) as store:
        users = _users(store, USERS)
    with FakeTelegram(max_per_second=1000, max_per_chat=10) as fake:
        fake.slow_answers(1.0)  # Telegram takes each message at once but answers a second later
        proc = _deliver(settings.home, fake)
        try:
            fake.wait_for(lambda: sum(len(fake.messages(u)) for u in users) >= USERS // 2, timeout=120,
                          what="half the digests delivered")
        finally:
            proc.kill()  # SIGKILL: no cleanup of any kind
            proc.communicate(timeout=30)
        delivered_at_kill = {u for u in users if fake.messages(u)}
        with Store(settings.db_path) as store:
            status = {u: store.digest_status(u, store.latest_announcement() or "") for u in users}
        in_flight = [u for u in users if status[u] == "sending"]
        assert 0 < len(in_flight) <= 40  # the run was cut mid-way, with requests in flight (concurrency 40)
        assert any(s == "sent" for s in status.values())  # and some digests recorded before the kill
        assert delivered_at_kill - {u for u in users if status[u] in ("sent", "sending")} == set()

        fake.slow_answers(0.0)
        second = _deliver(settings.home, fake)
        out, err = second.communicate(timeout=180)
        assert second.returncode == 0, err[-3000:]
        report = json.loads(out)
    texts = {u: [m.text for m in fake.messages(u)] for u in users}
    plain = Counter(sum(t.startswith("Your arXiv digest") for t in texts[u]) for u in users)
    marked = {u for u in users if any(t.startswith(MARK) for t in texts[u])}
    assert all(texts[u] for u in users)  # nobody missed
    assert set(plain) <= {0, 1}  # nobody got an unmarked duplicate
    assert all(sum(t.startswith(MARK) for t in texts[u]) <= 1 for u in users)
    assert marked == set(in_flight) and report["resent"] == len(in_flight)  # exactly the unknown ones, marked
    repeats = [u for u in marked if any(t.startswith("Your arXiv digest") for t in texts[u])]
    assert len(repeats) <= len(in_flight)
    assert all(texts[u][-1].startswith(MARK) for u in marked)  # the marked copy came after the interruption
    assert report["sent"] == USERS - sum(status[u] == "sent" for u in users) and report["failed"] == 0
    with Store(settings.db_path) as store:
        day = store.latest_announcement() or ""
        assert {store.digest_status(u, day) for u in users} == {"sent"}
        assert all(store.digest_items(u, day) == [] for u in users)  # every message id recorded


def test_a_refused_digest_is_repaired_or_given_up_visibly(rt: Runtime, fake: FakeTelegram,
                                                          caplog: pytest.LogCaptureFixture,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    users = _users(rt.store, 3)
    fake.refuse_html(users[0])  # "can't parse entities": sent again as plain text
    fake.block(users[2])
    caplog.set_level(logging.INFO)

    async def go() -> None:
        app = build_application(rt)
        async with app:
            report = await Deliverer(rt, app.bot).run(now=datetime(2026, 6, 30, 12, 0, 30, tzinfo=UTC), force=True)
        assert report.sent == 2 and report.repaired == 1 and report.blocked == 1, report

    run(go())
    day = rt.store.latest_announcement() or ""
    repaired = fake.messages(users[0])
    assert len(repaired) >= 1 and repaired[0].text.startswith("Your arXiv digest")
    assert "<b>" not in repaired[0].html and "arxiv.org/abs/" in repaired[0].text  # plain text, links written out
    assert repaired[-1].markup is not None  # the buttons still came along
    assert rt.store.digest_status(users[0], day) == "sent"
    assert rt.store.digest_status(users[2], day) != "sending"  # blocked: nothing left in an unknown state

    # a digest refused in every form ends 'failed', with one line an operator can grep for
    user = _users(rt.store, 1, start=30_000)[0]
    fake.refuse_html(user)
    monkeypatch.setattr("bot.telegram.delivery.to_plain", lambda piece: "")  # empty text: refused too

    async def again() -> None:
        app = build_application(rt)
        async with app:
            report = await Deliverer(rt, app.bot).run(now=datetime(2026, 6, 30, 12, 0, 30, tzinfo=UTC), force=True)
        assert report.failed == 1 and report.sent == 0, report

    run(again())
    assert fake.messages(user) == []
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("delivery gave up:")]
    assert len(lines) == 1 and f"user={user} day={day} reason=" in lines[0]
    assert rt.store.digest_status(user, day) == "failed"
    assert rt.store.delivered_ids(user) == set()  # nothing counts as delivered
    monkeypatch.setenv("ARXIV_DIGEST_HOME", str(rt.settings.home))
    assert main(["users"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith(str(user)))
    assert "failed" in row
