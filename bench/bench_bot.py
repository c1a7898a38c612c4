"""Benchmark: the bot under load against the fake Bot API server (tests/fake_telegram.py) on 127.0.0.1.

1. Reply latency: ``--users`` simulated users (default 50) send commands concurrently for ``--rounds`` rounds
   (each user waits for its reply, then thinks ``--think`` seconds, default 2-4 s, so the offered load stays
   under Telegram's 30 messages/s; with less think time the 30/s cap, not the bot, sets the latency); for
   each command: p50/p95 of the end-to-end
   latency (update queued at the fake server -> reply received by it, through real python-telegram-bot long
   polling) and of the command's own compute time in the bot's worker (what "excluding the network" means).
2. Delivery: ``--delivery-users`` users (default 10,000) get their digest in one run: wall time, messages/s
   against Telegram's 30/s limit, and how many 429s the fake server had to answer (it runs in a separate
   process here, so its sliding one-second window is not skewed by the bot's own CPU use).

3. ``--during-ingest``: the real bot (real engine, real classifier, the demo papers) answers 50 users'
   /help, /similar, /classify, /like and /digest while its own ingestion job, started through the runtime,
   stores, embeds and classifies ``--ingest-papers`` (default 1,200) new real papers served by a local RSS
   server; only commands sent while ingestion runs are counted. Writes
   ``bench/results/bot_during_ingest.json``: ``{"ingest_papers", "ingest_seconds", "commands": {name: {"n",
   "p50_ms", "p95_ms"}}}``.

Uses the real engine and classifier when they are installed, else the lexical stand-ins of the tests (the
figures say which). Prints the figures and writes ``bench/results/bot.json``. Usage:
``python bench/bench_bot.py [--users 50] [--rounds 4] [--delivery-users 10000] [--out FILE]``
(``--delivery-users 0`` measures reply latency only).
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.commands import Caller, Commands  # noqa: E402
from bot.reply import Reply  # noqa: E402
from bot.telegram import Deliverer, Runtime, build_application, running  # noqa: E402
from recommender.config import Settings  # noqa: E402
from recommender.engine.core import Engine  # noqa: E402
from recommender.engine.pipeline import ensure_demo_corpus  # noqa: E402
from recommender.store import Store  # noqa: E402
from tests.support.bot_fixtures import KeywordClassifier, bot_settings, hash_engine  # noqa: E402
from tests.support.fake_telegram import FakeTelegram  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


class TimedCommands(Commands):
    """Commands that record how long each one took in the worker."""

    timings: dict[str, list[float]]

    def handle(self, caller: Caller, text: str) -> list[Reply]:
        t0 = time.perf_counter()
        try:
            return super().handle(caller, text)
        finally:
            name = text.split()[0] if text.startswith("/") else "(text)"
            self.timings.setdefault(name, []).append(time.perf_counter() - t0)


def make_commands(settings: Settings, store: Store, real: bool) -> tuple[TimedCommands, str, str]:
    kind = "engine with hashed-words embedder"
    cmds = TimedCommands(settings, store)
    if real:
        try:
            cmds.engine.embed_missing(progress=True)
            kind = "real engine"
        except Exception as exc:  # noqa: BLE001
            print(f"real engine unavailable ({exc}); using the hashed-words embedder")
            real = False
    if not real:
        cmds = TimedCommands(settings, store, engine_factory=lambda: hash_engine(settings, store),
                             classifier_factory=KeywordClassifier)
        cmds.engine.embed_missing(progress=False)
    try:
        clf_kind = str(cmds.classifier.meta.get("name", "keyword stand-in"))
    except Exception as exc:  # noqa: BLE001
        print(f"classifier unavailable ({exc}); using the keyword stand-in")
        cmds._classifier_factory = KeywordClassifier
        cmds.__dict__.pop("classifier", None)
        clf_kind = "keyword stand-in"
    cmds.timings = {}
    return cmds, kind, clf_kind


async def latency(rt: Runtime, fake: FakeTelegram, users: int, rounds: int, ids: list[str],
                  think: tuple[float, float]) -> dict:
    scripts = ["/similar {id}", "/similar diffusion models for protein structure 5", "/classify {id}",
               "/like {id}", "/digest", "/likes", "/settings", "/help"]
    e2e: dict[str, list[float]] = {}

    async def user(uid: int) -> None:
        rng = random.Random(uid)
        fake.send_text(uid, "/follow cs.LG cs.CL")
        await fake.replies(uid, 1, timeout=120)
        await asyncio.sleep(rng.uniform(*think))
        for _ in range(rounds):
            for tmpl in scripts:
                text = tmpl.format(id=rng.choice(ids))
                before = len(fake.messages(uid))
                t0 = time.perf_counter()
                fake.send_text(uid, text)

                def answered(n: int = before) -> bool:
                    return len(fake.chats.get(uid, [])) > n

                await fake.until(answered, timeout=120)
                e2e.setdefault(text.split()[0], []).append(time.perf_counter() - t0)
                await asyncio.sleep(rng.uniform(*think))

    async with running(rt):
        t0 = time.perf_counter()
        await asyncio.gather(*(user(500_000 + k) for k in range(users)))
        wall = time.perf_counter() - t0
    assert isinstance(rt.commands, TimedCommands)
    compute = rt.commands.timings
    out = {}
    for name in sorted(e2e):
        out[name] = {"n": len(e2e[name]), "e2e_p50_ms": round(pct(e2e[name], .5) * 1000, 1),
                     "e2e_p95_ms": round(pct(e2e[name], .95) * 1000, 1),
                     "compute_p50_ms": round(pct(compute.get(name, []), .5) * 1000, 1),
                     "compute_p95_ms": round(pct(compute.get(name, []), .95) * 1000, 1)}
    return {"users": users, "rounds": rounds, "think_s": list(think), "wall_s": round(wall, 1), "commands": out}


def serve_fake(conn: Any) -> None:
    """Child process: a fake Bot API server of its own, so its clock is not skewed by the bot's GIL."""
    with FakeTelegram() as fake:
        conn.send(fake.base_url)
        while conn.recv() != "stop":
            with fake.lock:
                conn.send({"messages": sum(len(v) for v in fake.chats.values()),
                           "http_429": sum(1 for e in fake.errors if e[1] == 429),
                           "errors": len(fake.errors), "rate_violations": fake.rate_violations})


async def delivery(rt: Runtime, n: int) -> dict:
    store = rt.store
    with store.transaction():
        for k in range(n):
            uid = 1_000_000 + k
            store.ensure_user(uid, chat_id=uid, timezone="UTC", digest_hour=12, interests=random.choice(
                ["language models", "graph neural networks", "reinforcement learning",
                 "computer vision transformers", "causal inference"]))
            store.set_user_categories(uid, ["cs.LG"])
    latest = store.latest_announcement()
    assert latest is not None
    now = datetime.fromisoformat(latest).replace(hour=12, minute=0, second=30, tzinfo=UTC)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=serve_fake, args=(child,), daemon=True)
    proc.start()
    try:
        url = parent.recv()
        drt = Runtime(dataclasses.replace(rt.settings, telegram_api_url=url), store, rt.commands)
        app = build_application(drt)
        async with app:
            t0 = time.perf_counter()
            report = await Deliverer(drt, app.bot, concurrency=64).run(now=now)
            wall = time.perf_counter() - t0
        drt.close()
        parent.send("stats")
        server = parent.recv()
        parent.send("stop")
    finally:
        proc.join(timeout=10)
    return {"users": n, "digests": report.sent, "empty": report.empty, "failed": report.failed,
            "messages": report.messages, "wall_s": round(wall, 1),
            "messages_per_s": round(report.messages / wall, 2) if wall else None, "limit_per_s": 30,
            "messages_at_server": server["messages"], "http_429_from_fake": server["http_429"],
            "fake_server": "separate process"}


CORPUS = ROOT.parent / "shared" / "data" / "arxiv_corpus.jsonl.gz"
INGEST_DAY = date(2026, 7, 1)  # the day after the demo's latest announcement


def fresh_listing(store: Store, n: int) -> list[Any]:
    """``n`` real papers the store lacks (from the shared corpus, else the demo sample with fresh ids), as
    (paper, "new") items of a day's RSS listing."""
    from recommender.sources.importer import iter_file
    out: list[Any] = []
    if CORPUS.is_file():
        for p in iter_file(CORPUS):
            if not store.has_paper(p.id):
                out.append((dataclasses.replace(p, announced=None, announce_type=None), "new"))
                if len(out) == n:
                    return out
    for k, p in enumerate(iter_file(ROOT / "data" / "demo_papers.jsonl.gz")):  # fresh ids: 2607.1xxxx
        out.append((dataclasses.replace(p, id=f"2607.{10000 + k:05d}", announced=None, announce_type=None), "new"))
        if len(out) == n:
            break
    return out


async def during_ingest(rt: Runtime, fake: FakeTelegram, users: int, ids: list[str],
                        think: tuple[float, float]) -> dict:
    """``users`` users send /help, /similar, /classify, /like and /digest while the bot's own ingestion job
    (started through the runtime, as the JobQueue does) stores, embeds and classifies the day's listing.
    Only commands sent while ingestion runs are counted."""
    scripts = ["/help", "/similar {id}", "/classify {id}", "/like {id}", "/digest"]
    e2e: dict[str, list[float]] = {name: [] for name in scripts_names(scripts)}
    done = asyncio.Event()
    # one watcher checks every user's chat every 10 ms (50 users polling on their own would wake the bot's
    # event loop thousands of times a second and measure the harness, not the bot)
    waiting: dict[int, tuple[int, asyncio.Future[float]]] = {}

    async def watch() -> None:
        while True:
            with fake.lock:
                arrived = [uid for uid, (n, _) in waiting.items() if len(fake.chats.get(uid, [])) > n]
            now = time.perf_counter()
            for uid in arrived:
                waiting.pop(uid)[1].set_result(now)
            await asyncio.sleep(0.01)

    async def user(uid: int) -> None:
        rng = random.Random(uid)
        await asyncio.sleep(rng.uniform(0, think[1]))
        while not done.is_set():
            text = rng.choice(scripts).format(id=rng.choice(ids))
            arrival: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            waiting[uid] = (len(fake.messages(uid)), arrival)
            t0 = time.perf_counter()
            fake.send_text(uid, text)
            t1 = await asyncio.wait_for(arrival, 120)
            if not done.is_set():
                e2e[text.split()[0]].append(t1 - t0)
            await asyncio.sleep(rng.uniform(*think))

    async with running(rt):
        t0 = time.perf_counter()
        ingestion = asyncio.ensure_future(rt.ingest())
        ingestion.add_done_callback(lambda _: done.set())
        watcher = asyncio.ensure_future(watch())
        crowd = asyncio.gather(*(user(700_000 + k) for k in range(users)))
        report = await ingestion
        seconds = time.perf_counter() - t0
        print(f"ingestion done in {seconds:.1f} s; waiting for the users' last replies")
        await crowd
        watcher.cancel()
    if report.errors:
        print(f"ingestion errors: {report.errors}")
    return {"ingest_papers": report.inserted, "ingest_seconds": round(seconds, 1),
            "commands": {name: {"n": len(v), "p50_ms": round(pct(v, .5) * 1000, 1),
                                "p95_ms": round(pct(v, .95) * 1000, 1)} for name, v in e2e.items()}}


def scripts_names(scripts: list[str]) -> list[str]:
    return list(dict.fromkeys(t.split()[0] for t in scripts))


def main_during_ingest(args: argparse.Namespace) -> int:
    """``--during-ingest``: reply latency while the bot ingests ``--ingest-papers`` new papers."""
    from tests.support.arxiv_xml import rss_feed
    from tests.support.local_server import LocalServer

    tmp = Path(tempfile.mkdtemp(prefix="bench-bot-ingest-"))
    feeds = LocalServer()
    try:
        with FakeTelegram() as fake:
            settings = bot_settings(tmp, fake.base_url, rss_url=f"{feeds.url}/rss", categories=("cs.LG",))
            settings.ensure_home()
            if (args.state / "arxiv_digest.sqlite").is_file():
                shutil.copytree(args.state, settings.home, dirs_exist_ok=True)
            store = Store(settings.db_path, taxonomy=settings.taxonomy_path)
            ensure_demo_corpus(settings, store, progress=False)
            cmds = TimedCommands(settings, store)
            rt = Runtime(settings, store, cmds, ingest_process=not args.ingest_in_thread)  # as `run` does
            # the bot's warm-up, on its background worker (where the models' thread pools start)
            rt.background.submit(lambda: cmds.engine.seed_vectors(settings.demo_vectors)).result()
            rt.background.submit(rt.warm_up).result()
            clf = str(cmds.classifier.meta.get("name", "?"))
            cmds.timings = {}
            if args.save_state and not args.save_state.exists():  # a prepared state for the next run's --state
                store.checkpoint()
                shutil.copytree(settings.home, args.save_state)
            listing = fresh_listing(store, args.ingest_papers)
            feeds.route("/rss/cs.LG", (200, rss_feed(["cs.LG"], INGEST_DAY, listing)))
            latest = store.latest_announcement()
            assert latest is not None
            ids = store.announced_ids(latest, categories=["cs.LG"])[:200]
            for k in range(args.users):  # users with a profile, so /digest ranks a real day
                uid = 700_000 + k
                store.ensure_user(uid, chat_id=uid)
                store.set_user_categories(uid, ["cs.LG"])
                store.update_user(uid, interests=random.Random(k).choice(
                    ["language models", "graph neural networks", "reinforcement learning", "diffusion models"]))
            engine = cmds.engine
            backend = engine.embedder.backend if isinstance(engine, Engine) and engine.embedder else "?"
            print(f"{store.count_papers()} papers, real engine ({backend}), classifier {clf}; "
                  f"{args.users} users while ingesting {len(listing)} new papers ...")
            result = asyncio.run(during_ingest(rt, fake, args.users, ids, tuple(args.think)))
            rt.close()
            store.close()
    finally:
        feeds.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"ingested {result['ingest_papers']} papers in {result['ingest_seconds']} s")
    for name, v in result["commands"].items():
        print(f"  {name:10} n={v['n']:4}  end-to-end p50 {v['p50_ms']:7.1f} ms  p95 {v['p95_ms']:7.1f} ms")
    result["ingest_in"] = "thread" if args.ingest_in_thread else "process"
    result["load_avg_1min_at_end"] = round(os.getloadavg()[0], 2)
    out = args.out if args.out != RESULTS / "bot.json" else RESULTS / "bot_during_ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--think", type=float, nargs=2, default=(2.0, 4.0), metavar=("MIN", "MAX"),
                    help="seconds a user waits between commands")
    ap.add_argument("--delivery-users", type=int, default=10_000)
    ap.add_argument("--lexical", action="store_true", help="use the lexical stand-ins, not the real models")
    ap.add_argument("--out", type=Path, default=RESULTS / "bot.json",
                    help="where to write the figures (default bench/results/bot.json)")
    ap.add_argument("--state", type=Path, default=ROOT / "var",
                    help="a state directory to start from (reuses its demo papers and vectors; default ./var)")
    ap.add_argument("--during-ingest", action="store_true",
                    help="reply latency of /help, /similar, /classify, /like, /digest while the bot ingests "
                         "--ingest-papers new papers (writes bench/results/bot_during_ingest.json)")
    ap.add_argument("--ingest-papers", type=int, default=1200)
    ap.add_argument("--ingest-in-thread", action="store_true",
                    help="with --during-ingest: ingest on the bot's background thread instead of a child process "
                         "(for comparison)")
    ap.add_argument("--save-state", type=Path, default=None,
                    help="with --during-ingest: keep the prepared state (demo papers, vectors, exported model) here")
    args = ap.parse_args()
    import logging
    logging.basicConfig(level=logging.WARNING)
    if args.during_ingest:
        return main_during_ingest(args)
    tmp = Path(tempfile.mkdtemp(prefix="bench-bot-"))
    results: dict = {}
    try:
        with FakeTelegram() as fake:
            settings = bot_settings(tmp, fake.base_url)
            settings.ensure_home()
            cache = args.state  # reuse the demo state (and its vectors) of `make run` when present
            if (cache / "arxiv_digest.sqlite").is_file() and not args.lexical:
                shutil.copytree(cache, settings.home, dirs_exist_ok=True)
            store = Store(settings.db_path, taxonomy=settings.taxonomy_path)
            ensure_demo_corpus(settings, store, progress=False)
            cmds, kind, clf_kind = make_commands(settings, store, real=not args.lexical)
            rt = Runtime(settings, store, cmds)
            latest = store.latest_announcement()
            assert latest is not None
            ids = store.announced_ids(latest, categories=["cs.LG"])[:200]
            results["engine"] = kind
            results["classifier"] = clf_kind
            results["papers"] = store.count_papers()
            print(f"{results['papers']} papers, {kind}, classifier {clf_kind}; latency with {args.users} users x "
                  f"{args.rounds} rounds")
            results["latency"] = asyncio.run(latency(rt, fake, args.users, args.rounds, ids, tuple(args.think)))
            for name, v in results["latency"]["commands"].items():
                print(f"  {name:10} n={v['n']:4}  end-to-end p50 {v['e2e_p50_ms']:7.1f} ms  p95 "
                      f"{v['e2e_p95_ms']:7.1f} ms   compute p50 {v['compute_p50_ms']:6.1f} ms  p95 "
                      f"{v['compute_p95_ms']:6.1f} ms")
            if args.delivery_users:
                fake.errors.clear()
                print(f"delivery run to {args.delivery_users} users ...")
                results["delivery"] = asyncio.run(delivery(rt, args.delivery_users))
                d = results["delivery"]
                print(f"  {d['digests']} digests, {d['messages']} messages in {d['wall_s']} s = "
                      f"{d['messages_per_s']} msg/s (limit 30/s); 429s: {d['http_429_from_fake']}, failed: "
                      f"{d['failed']}")
            rt.close()
            store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
