"""The bot with the real recommender engine (a tiny hashed-words embedder keeps it fast) and real ingestion:
unknown ids fetched from the arXiv API (a local server), the scheduled ingestion job with a listing and
with an empty feed, and the digest built by the real ranking."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from bot.commands import Commands
from bot.telegram import Deliverer, Runtime, running
from recommender.config import Settings
from recommender.engine import Engine
from recommender.models import Paper
from recommender.store import Store
from tests.support.arxiv_xml import rss_feed
from tests.support.bot_fixtures import KeywordClassifier, hash_engine, run
from tests.support.fake_telegram import TOKEN, FakeTelegram
from tests.support.local_server import LocalServer

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def rt(settings: Settings, store: Store, fake: FakeTelegram, demo_papers: list[Paper]) -> Iterator[Runtime]:
    s = dataclasses.replace(settings, telegram_token=TOKEN, telegram_api_url=fake.base_url,
                            categories=("cs.LG",))
    store.upsert_papers([p for p in demo_papers if p.announced != "2026-06-30"][:300])
    engine = hash_engine(s, store)
    engine.embed_missing(progress=False)
    r = Runtime(s, store, Commands(s, store, engine_factory=lambda: engine, classifier_factory=KeywordClassifier))
    yield r
    r.close()


def test_unknown_ids_are_fetched_then_liked_and_missing_ones_explained(rt: Runtime, fake: FakeTelegram,
                                                                      server: LocalServer) -> None:
    body = (FIXTURES / "arxiv_api" / "id_2104.12255v1_s0_m100_6ae69987ffe1.body.xml").read_bytes()
    empty = (FIXTURES / "arxiv_api" / "id_0000.0000_s0_m100_8b51d9633a68.body.xml").read_bytes()
    server.route("/api/query", (200, body), (200, empty))
    uid = 42

    async def go() -> None:
        async with running(rt):
            fake.send_text(uid, "/like arXiv:2104.12255v1")
            [fetching, liked] = await fake.replies(uid, 2)  # answered at once, completed in the background
            assert "Fetching 2104.12255 from arXiv" in fetching.text
            assert "Liked 2104.12255" in liked.text
            assert rt.store.has_paper("2104.12255") and rt.store.liked_ids(uid) == ["2104.12255"]
            fake.send_text(uid, "/similar 2104.12255 3")
            sim = (await fake.replies(uid, 3))[-1]
            assert sim.text.startswith("Close to 2104.12255") and sim.text.count("score") == 3
            fake.send_text(uid, "/like 2501.99999")
            missing = (await fake.replies(uid, 5))[-1]
            assert "could not find 2501.99999" in missing.text

    run(go())


def test_ingestion_job_then_digest_and_a_day_without_announcement(rt: Runtime, fake: FakeTelegram,
                                                                  server: LocalServer,
                                                                  demo_papers: list[Paper]) -> None:
    listing = [(p, "new") for p in demo_papers if p.announced == "2026-06-30" and "cs.LG" in p.categories][:40]
    server.route("/rss/cs.LG", (200, rss_feed(["cs.LG"], date(2026, 7, 1), listing)),
                 (200, rss_feed(["cs.LG"], None, [])))
    uid = 77
    rt.store.ensure_user(uid, chat_id=uid, digest_hour=8, timezone="UTC")
    rt.store.set_user_categories(uid, ["cs.LG"])
    rt.store.update_user(uid, interests="large language models and reasoning", min_score=0.0)

    async def go() -> None:
        async with running(rt) as app:
            report = await rt.ingest()
            assert report.announced == "2026-07-01" and report.inserted == 40
            seen = rt.store.announcement_first_seen("2026-07-01")
            d = Deliverer(rt, app.bot)
            fetched = datetime.fromisoformat(seen.replace("Z", "+00:00"))
            at_hour = fetched.replace(hour=8, minute=0, second=5)
            at_hour = at_hour if at_hour >= fetched else at_hour + timedelta(days=1)
            r = await d.run(now=at_hour)
            assert r.sent + r.empty == 1, r
            msg = fake.messages(uid)[-1]
            assert msg.text.startswith("Your arXiv digest for 2026-07-01"), msg.text
            assert "↳ matches your interest" in msg.text
            # next morning: the feed is empty (no announcement), the user is told once
            empty = await rt.ingest()
            assert empty.announced is None
            nxt = at_hour + timedelta(days=1)
            assert (await d.run(now=nxt)).notices == 1
            assert "No new arXiv papers" in fake.messages(uid)[-1].text
            assert (await d.run(now=nxt.replace(hour=9))).due == 0
            assert (await d.run(now=nxt.replace(hour=8, minute=30))).due == 0

    run(go())


def test_ingestion_in_its_own_process_is_picked_up_by_the_bot(settings: Settings, store: Store,
                                                               server: LocalServer,
                                                               demo_papers: list[Paper]) -> None:
    """As `arxiv-digest run` does it: the ingestion job runs in a child process with the real models (torch
    backend: no ONNX export) and the bot's own engine then sees the new vectors; predictions are stored."""
    s = dataclasses.replace(settings, categories=("cs.LG",), embed_backend="torch")
    store.upsert_papers([p for p in demo_papers if p.announced != "2026-06-30"][:50])
    listing = [(p, "new") for p in demo_papers if p.announced == "2026-06-30" and "cs.LG" in p.categories][:12]
    server.route("/rss/cs.LG", (200, rss_feed(["cs.LG"], date(2026, 7, 1), listing)))
    engine = Engine(s, store)
    rt = Runtime(s, store, Commands(s, store, engine_factory=lambda: engine), ingest_process=True)
    try:
        assert rt.commands.engine is engine  # the bot's engine is loaded before the job, as after a warm-up
        engine.embed_missing(progress=False)
        assert not any(p.id in engine.index for p, _ in listing)
        report = run(rt.ingest())
        assert report.announced == "2026-07-01" and report.inserted == 12 and not report.errors, report
        assert report.embedded >= 12 and report.classified == 12
        assert all(p.id in engine.index for p, _ in listing)  # published by the child, reloaded here
        assert len(store.predictions([p.id for p, _ in listing])) == 12
        assert not rt.children
    finally:
        rt.close()
