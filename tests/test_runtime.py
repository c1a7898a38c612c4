"""Replies never wait: the bot runtime's reply pool, background worker and per-chat queues, end to end with the
real python-telegram-bot against the fake Bot API server, the real Engine (hashed-words embedder) and a local
server playing arXiv. Nothing here sleeps to assert: the slow parts are held on threading.Events and released
only after what must not wait for them has happened.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from bot.commands import Commands
from bot.pacing import Pacer
from bot.telegram import Runtime, running
from recommender.config import Settings
from recommender.engine.core import Engine
from recommender.models import Paper
from recommender.store import Store
from tests.support.arxiv_xml import rss_feed
from tests.support.bot_fixtures import ROOT, HashEmbedder, KeywordClassifier, run
from tests.support.fake_telegram import TOKEN, FakeTelegram
from tests.support.local_server import LocalServer

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HOLD = 30.0  # seconds a held server answer or embedder waits at most (a failing test, not a passing one)


class GatedEmbedder(HashEmbedder):
    """Embeds like HashEmbedder, but a bulk call (more than one text) waits for ``release``."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if len(texts) > 1:
            self.entered.set()
            self.release.wait(HOLD)
        return super().encode(texts, batch_size, progress)


@pytest.fixture
def embedder() -> GatedEmbedder:
    return GatedEmbedder()


@pytest.fixture
def rt(settings: Settings, store: Store, fake: FakeTelegram, demo_papers: list[Paper],
       embedder: GatedEmbedder) -> Iterator[Runtime]:
    s = dataclasses.replace(settings, telegram_token=TOKEN, telegram_api_url=fake.base_url, categories=("cs.LG",),
                            api_retries=0, api_timeout=HOLD + 10)
    store.upsert_papers([p for p in demo_papers if p.announced != "2026-06-30"][:200])
    engine = Engine(s, store, embedder=embedder)
    embedder.release.set()
    engine.embed_missing(progress=False)
    embedder.release.clear()
    r = Runtime(s, store, Commands(s, store, engine_factory=lambda: engine, classifier_factory=KeywordClassifier))
    yield r
    embedder.release.set()
    r.close()


def test_store_gives_each_thread_its_own_connection_and_transaction(store: Store) -> None:
    store.ensure_user(1, chat_id=1)
    inside, go_on = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def writer() -> None:
        with store.transaction():
            store.update_user(1, digest_size=9)
            inside.set()
            go_on.wait(HOLD)
        seen["writer_conn"] = store.conn

    t = threading.Thread(target=writer)
    t.start()
    assert inside.wait(HOLD)
    # another thread is not inside the writer's transaction: it reads the committed state, on its own connection
    assert store.get_user(1).digest_size != 9
    seen["main_conn"] = store.conn
    go_on.set()
    t.join(HOLD)
    assert store.get_user(1).digest_size == 9
    assert seen["writer_conn"] is not seen["main_conn"]


def test_silent_arxiv_delays_no_one_and_the_follow_up_arrives_when_it_answers(
        rt: Runtime, fake: FakeTelegram, server: LocalServer) -> None:
    body = (FIXTURES / "arxiv_api" / "id_2104.12255v1_s0_m100_6ae69987ffe1.body.xml").read_bytes()
    arxiv_answers = threading.Event()
    asked = threading.Event()

    def held(path: str, query: dict) -> tuple:
        asked.set()
        arxiv_answers.wait(HOLD)
        return (200, body)

    server.route("/api/query", held)

    async def go() -> None:
        async with running(rt):
            fake.send_text(1, "/like 2104.12255")
            [fetching] = await fake.replies(1, 1)
            assert fetching.text.startswith("Fetching 2104.12255 from arXiv")
            await fake.until(asked.is_set, what="the look-up reaching arXiv")
            fake.send_text(2, "/help")  # another chat, while arXiv is silent
            [help_] = await fake.replies(2, 1)
            assert "What I can do" in help_.text
            fake.send_text(1, "/likes")  # the same chat is not blocked either: the look-up runs elsewhere
            await fake.replies(1, 2)
            assert not arxiv_answers.is_set() and not rt.store.has_paper("2104.12255")
            arxiv_answers.set()
            liked = (await fake.replies(1, 3))[-1]
            assert "Liked 2104.12255" in liked.text
            assert rt.store.liked_ids(1) == ["2104.12255"]

    run(go())


def test_ingestion_stuck_in_embedding_delays_no_reply(rt: Runtime, fake: FakeTelegram, server: LocalServer,
                                                       demo_papers: list[Paper], embedder: GatedEmbedder) -> None:
    listing = [(p, "new") for p in demo_papers if p.announced == "2026-06-30" and "cs.LG" in p.categories][:30]
    server.route("/rss/cs.LG", (200, rss_feed(["cs.LG"], date(2026, 7, 1), listing)))
    liked = rt.store.paper_ids()[0]

    async def go() -> None:
        async with running(rt):
            ingestion = asyncio.ensure_future(rt.in_background(rt.ingest_once))
            await fake.until(embedder.entered.is_set, what="ingestion inside the embedder")
            fake.send_text(3, "/help")
            fake.send_text(4, f"/like {liked}")
            fake.send_text(4, f"/similar {liked} 3")
            [help_] = await fake.replies(3, 1)
            assert "What I can do" in help_.text
            like, similar = await fake.replies(4, 2)
            assert f"Liked {liked}" in like.text and similar.text.startswith(f"Close to {liked}")
            assert not embedder.release.is_set()
            embedder.release.set()
            report = await ingestion
            assert report.inserted == 30 and report.embedded >= 30

    run(go())


def test_a_flooding_chat_delays_only_itself(rt: Runtime, fake: FakeTelegram) -> None:
    async def go() -> None:
        async with running(rt, pacer=Pacer(per_chat_interval=1.0)):
            for _ in range(100):  # more than PTB's 64 concurrent update slots
                fake.send_text(5, "/help")
            await fake.until(lambda: fake.messages(5), what="the flood's first answer")
            fake.send_text(6, "/help")
            await fake.replies(6, 1)
            # chat 5 gets one message a second: most of its flood is still waiting when chat 6 is answered
            assert len(fake.messages(5)) < 20
            await fake.until(lambda: any("faster than I can answer" in m.text for m in fake.messages(5)),
                             what="the slow-down note")
            assert rt.chats.refused >= 100 - 21
            assert sum("faster than I can answer" in m.text for m in fake.messages(5)) == 1

    run(go())


@pytest.mark.slow
def test_run_stops_at_once_on_sigterm_while_arxiv_is_silent(tmp_path: Path, fake: FakeTelegram,
                                                            server: LocalServer) -> None:
    server.route("/api/query", ("hang", "120"))
    server.route("/rss/cs.LG", ("hang", "120"))
    env = {**os.environ, "ARXIV_DIGEST_HOME": str(tmp_path / "var"), "TELEGRAM_BOT_TOKEN": fake.token,
           "TELEGRAM_API_URL": fake.base_url, "HF_HUB_OFFLINE": "1", "ARXIV_DIGEST_CATEGORIES": "cs.LG",
           "ARXIV_DIGEST_RSS_URL": f"{server.url}/rss", "ARXIV_DIGEST_API_URL": f"{server.url}/api/query"}
    proc = subprocess.Popen([sys.executable, "-m", "recommender.cli.main", "run"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        fake.wait_for(lambda: fake.commands, timeout=120, what="setMyCommands")
        fake.send_text(9, "/like 2612.99999")  # a look-up the silent arXiv never answers
        fake.wait_for(lambda: any(r[0] == "/api/query" for r in server.requests), timeout=60,
                      what="the look-up waiting on arXiv")
        assert "Fetching 2612.99999" in fake.wait_messages(9, 1)[0].text
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)  # arXiv would hold it for minutes
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
