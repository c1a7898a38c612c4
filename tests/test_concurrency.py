"""The concurrency model (recommender.engine.concurrency) held by real components under real threads.

Readers of an index never see a torn state while a writer adds and replaces vectors; a query is answered while
bulk embedding is blocked inside the model; a look-up stuck on a silent arXiv does not hold up replies; the
arXiv politeness budget is one for all clients of the process and for other processes on the state directory
(checked by the local server's own timestamps); request_shutdown() and close() end waits and requests at once.
No sleeps in assertions: threads signal with events, and waits are bounded by generous timeouts.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from recommender.config import Settings
from recommender.embedding.embed import Embedder
from recommender.embedding.lexical import LexicalIndex
from recommender.embedding.vectors import VectorIndex
from recommender.engine.core import Engine
from recommender.models import Paper
from recommender.sources.arxiv import ArxivClient, ArxivError, ArxivShutdown, request_shutdown, reset_shutdown
from recommender.store import Store
from tests.support.local_server import LocalServer

ROOT = Path(__file__).resolve().parent.parent
API = Path(__file__).resolve().parent / "fixtures" / "arxiv_api"
EMPTY = (API / "id_0000.0000_s0_m100_8b51d9633a68.body.xml").read_bytes()
DIM = 16
TIMEOUT = 60.0  # generous bound for every wait on another thread
JITTER = 0.1  # the server stamps arrivals on a thread of this (busy) process: allow this much scheduling delay


def wait_for(cond: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    """Poll ``cond`` until true or ``timeout`` (a bound, not a sleep the assertion relies on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads every 10 µs instead of 5 ms, so interleavings that tear shared state happen often."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


@pytest.fixture
def no_shutdown() -> Iterator[None]:
    reset_shutdown()
    yield
    reset_shutdown()


# -- indexes: readers never see a torn state -----------------------------------------------------------
def _vec(num: int, version: int) -> np.ndarray:
    """Paper ``num``'s vector at ``version``: the id and version are readable back from any stored row."""
    v = np.zeros(DIM, dtype=np.float32)
    v[0], v[1], v[2] = float(num), float(version), 1.0
    v[3 + num % (DIM - 3)] = 0.5
    return v / np.linalg.norm(v)


def _decode(v: np.ndarray) -> tuple[int, int]:
    return int(round(float(v[0] / v[2]))), int(round(float(v[1] / v[2])))


def test_vector_readers_never_see_a_torn_state(tmp_path: Path, fast_switching: None) -> None:
    index = VectorIndex(tmp_path, "t|16", DIM)
    n_batches, batch = 60, 50
    universe = [f"p{i}" for i in range(n_batches * batch)]
    stop = threading.Event()
    problems: list[str] = []
    reads = [0]

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        seen_version: dict[str, int] = {}
        while not stop.is_set():
            pid = universe[int(rng.integers(len(universe)))]
            try:
                if pid in index:
                    num, version = _decode(index.get([pid])[0])  # must not fail: the id was in the index
                    if f"p{num}" != pid:
                        problems.append(f"{pid} returned the vector of p{num}")
                    if version < seen_version.get(pid, 0):
                        problems.append(f"{pid} went back from version {seen_version[pid]} to {version}")
                    seen_version[pid] = version
                    snap = index.snapshot()  # one state: the vector read and the search agree
                    own = snap.get([pid])[0]
                    hits = snap.search_many(own[None, :], k=3)[0]
                    for hid, _ in hits:
                        if f"p{_decode(snap.get([hid])[0])[0]}" != hid:
                            problems.append(f"search returned {hid} for another paper's row")
                    if not hits or hits[0][1] < 0.999:
                        problems.append(f"search for {pid}'s own vector found {hits[:1]}")
                snap = index.snapshot()
                if not (len(snap.ids) == snap.matrix.shape[0] == len(snap.row)):
                    problems.append(f"snapshot shapes {len(snap.ids)} ids, {snap.matrix.shape[0]} rows")
                reads[0] += 1
            except Exception as exc:  # noqa: BLE001 - any failure of a read is what the test looks for
                problems.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    try:
        for b in range(n_batches):
            ids = universe[b * batch:(b + 1) * batch]
            index.add(ids, np.stack([_vec(int(i[1:]), 1) for i in ids]))
            if b % 3 == 2:  # replace earlier papers with a new version
                old = universe[(b - 2) * batch:(b - 1) * batch]
                index.add(old, np.stack([_vec(int(i[1:]), 2 + b) for i in old]))
    finally:
        stop.set()
        for t in threads:
            t.join(TIMEOUT)
    assert not problems, problems[:5]
    assert reads[0] > 100
    assert len(index) == len(universe)
    again = VectorIndex(tmp_path, "t|16", DIM)  # what the parts on disk say agrees with memory
    assert np.array_equal(again.get(universe), index.get(universe))


def test_lexical_readers_see_rows_of_the_right_papers(tmp_path: Path, fast_switching: None) -> None:
    words = ["quantum", "galaxy", "protein", "graph", "neural", "lattice", "spectra", "fluid", "market", "genome"]

    def text(i: int) -> str:
        return f"{words[i % 10]} {words[(i // 10) % 10]} study number{i} with {words[(i * 7) % 10]}"

    lex = LexicalIndex(tmp_path)
    lex.fit([f"p{i}" for i in range(50)], [text(i) for i in range(50)])
    stop = threading.Event()
    problems: list[str] = []

    def reader() -> None:
        rng = np.random.default_rng(1)
        while not stop.is_set():
            snap = lex.snapshot()
            if snap.matrix.shape[0] != len(snap.ids):
                problems.append("matrix and ids disagree")
            i = int(rng.integers(400))
            pid = f"p{i}"
            try:
                if pid in lex:
                    row = lex.get([pid])
                    want = lex.snapshot().transform([text(i)])
                    if abs(float((row @ want.T).toarray()[0, 0]) - 1.0) > 1e-4:
                        problems.append(f"{pid}'s row is not its text's")
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for start in range(50, 400, 25):
            lex.add([f"p{i}" for i in range(start, start + 25)], [text(i) for i in range(start, start + 25)])
            lex.add([f"p{start - 50}"], [text(start - 50)])  # a replaced paper, same text
    finally:
        stop.set()
        for t in threads:
            t.join(TIMEOUT)
    assert not problems, problems[:5]
    assert len(lex) == 400


def test_another_processes_parts_are_picked_up(tmp_path: Path) -> None:
    bot = VectorIndex(tmp_path, "t|16", DIM)
    bot.add(["p1"], _vec(1, 1)[None, :])
    assert not bot.reload_if_changed()  # its own write is not a change
    ingest = VectorIndex(tmp_path, "t|16", DIM)  # e.g. `arxiv-digest ingest` in another process
    ingest.add(["p2", "p1"], np.stack([_vec(2, 1), _vec(1, 5)]))
    assert "p2" not in bot
    assert bot.reload_if_changed()
    assert _decode(bot.get(["p2"])[0]) == (2, 1) and _decode(bot.get(["p1"])[0]) == (1, 5)
    assert not bot.reload_if_changed()
    ingest.compact()
    bot.add(["p3"], _vec(3, 1)[None, :])
    assert bot.reload_if_changed() and sorted(bot.ids) == ["p1", "p2", "p3"]
    bot.compact()  # merges only after reading every part on disk: nothing of the other writer is lost
    fresh = VectorIndex(tmp_path, "t|16", DIM)
    assert sorted(fresh.ids) == ["p1", "p2", "p3"] and _decode(fresh.get(["p1"])[0]) == (1, 5)


def test_lexical_files_saved_by_another_process_are_picked_up(tmp_path: Path) -> None:
    bot = LexicalIndex(tmp_path)
    assert not bot.ready and not bot.reload_if_changed()
    ingest = LexicalIndex(tmp_path)
    ingest.fit(["a", "b", "c"], ["quantum error correction", "galaxy formation", "protein folding"])
    ingest.save()
    assert bot.reload_if_changed() and bot.ready and len(bot) == 3
    assert not bot.reload_if_changed()


# -- the Engine: replies beside writer work --------------------------------------------------------------
class GatedEmbedder(Embedder):
    """Hashed words, deterministic; encoding more than one text (bulk) blocks until ``release`` is set."""

    name = "gated-test"
    backend = "test"

    def __init__(self) -> None:
        self.in_bulk = threading.Event()
        self.release = threading.Event()

    @property
    def dim(self) -> int:
        return 64

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if len(texts) > 1:
            self.in_bulk.set()
            if not self.release.wait(TIMEOUT):
                raise TimeoutError("the test never released bulk embedding")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for r, text in enumerate(texts):
            for w in text.lower().split():
                out[r, zlib.crc32(w.encode()) % self.dim] += 1.0
            out[r, 0] += 1e-3
        unit: np.ndarray = out / np.linalg.norm(out, axis=1, keepdims=True)
        return unit


def _paper(i: int, topic: str) -> Paper:
    return Paper(id=f"2601.{i:05d}", title=f"{topic} study {i}", abstract=f"We study {topic} in depth, part {i}.")


def test_a_query_is_answered_while_bulk_embedding_is_blocked(settings: Settings, store: Store) -> None:
    emb = GatedEmbedder()
    engine = Engine(settings, store, embedder=emb)
    store.upsert_papers([_paper(i, t) for i, t in enumerate(["quantum codes", "galaxy clusters"] * 3, start=1)])
    emb.release.set()
    assert engine.embed_missing(progress=False) == 6
    emb.release.clear()
    store.upsert_papers([_paper(i, "protein folding") for i in range(100, 140)])
    writer = threading.Thread(target=engine.embed_missing, kwargs={"progress": False})
    writer.start()
    try:
        assert emb.in_bulk.wait(TIMEOUT), "bulk embedding never started"
        hits = engine.similar("galaxy clusters", n=3)  # encodes one text and searches, while the writer waits
        assert hits and hits[0].paper.title.startswith("galaxy clusters")
        assert engine.vectors(["2601.00001"]).shape == (1, 64)
        assert engine.missing_vectors(["2601.00100", "2601.00001"]) == ["2601.00100"]
        assert writer.is_alive()  # the writer was still blocked inside the model all along
    finally:
        emb.release.set()
        writer.join(TIMEOUT)
    assert not writer.is_alive() and engine.missing_vectors(store.paper_ids()) == []


def test_a_lookup_stuck_on_a_silent_arxiv_does_not_hold_up_replies(settings: Settings, store: Store,
                                                                    server: LocalServer, no_shutdown: None) -> None:
    server.route("/api/query", ("hang", "30"))
    emb = GatedEmbedder()
    emb.release.set()
    engine = Engine(dataclasses.replace(settings, api_timeout=30.0), store, embedder=emb)
    store.upsert_papers([_paper(i, t) for i, t in enumerate(["quantum codes", "galaxy clusters"] * 3, start=1)])
    engine.embed_missing(progress=False)
    outcome: list[BaseException] = []

    def look_up() -> None:
        try:
            engine.ensure_papers(["2612.99999"])
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    lookup = threading.Thread(target=look_up)
    lookup.start()
    try:
        assert wait_for(lambda: len(server.requests) == 1), "the look-up never reached arXiv"
        assert engine.similar("quantum codes", n=2)[0].paper.title.startswith("quantum codes")
        assert engine.vectors(["2601.00002"]).shape == (1, 64)
        assert lookup.is_alive()
    finally:
        request_shutdown()
        lookup.join(5.0)
    assert not lookup.is_alive()
    assert isinstance(outcome[0], LookupError) and isinstance(outcome[0].__cause__, ArxivShutdown)


def test_the_bot_engine_picks_up_what_an_ingest_process_wrote(settings: Settings, store: Store) -> None:
    emb = GatedEmbedder()
    emb.release.set()
    bot = Engine(settings, store, embedder=emb)
    store.upsert_papers([_paper(i, t) for i, t in enumerate(["quantum codes", "galaxy clusters"] * 3, start=1)])
    bot.embed_missing(progress=False)
    assert not bot.reload_if_changed()
    ingest = Engine(settings, store, embedder=emb)  # `arxiv-digest ingest`: its own Engine on the same files
    store.upsert_papers([_paper(i, "protein folding") for i in range(100, 110)])
    assert ingest.embed_missing(progress=False) == 10
    assert bot.missing_vectors(["2601.00100"]) == ["2601.00100"] and len(bot.lexical) == 6
    assert bot.reload_if_changed()
    assert bot.missing_vectors(["2601.00100"]) == [] and len(bot.lexical) == 16
    assert bot.similar("protein folding", n=1)[0].paper.id.startswith("2601.001")
    assert not bot.reload_if_changed()


def test_vectors_on_the_reply_path_do_not_embed_hundreds(settings: Settings, store: Store) -> None:
    from recommender.engine.core import TRANSIENT_EMBED_LIMIT, VectorsPending

    emb = GatedEmbedder()
    emb.release.set()
    engine = Engine(settings, store, embedder=emb)
    papers = [_paper(i, "graph networks") for i in range(1, TRANSIENT_EMBED_LIMIT + 10)]
    store.upsert_papers(papers)
    few = [p.id for p in papers[:3]]
    assert engine.vectors(few).shape == (3, 64)  # a few are encoded on the spot ...
    assert engine.missing_vectors(few) == few  # ... and not stored by a reader
    with pytest.raises(VectorsPending) as err:
        engine.vectors([p.id for p in papers])
    assert len(err.value.ids) == len(papers)
    assert engine.embed_ids(err.value.ids) == len(papers)  # the writer step
    assert engine.vectors([p.id for p in papers]).shape == (len(papers), 64)


# -- arXiv: one politeness budget, shutdown ----------------------------------------------------------------
def _request_times(server: LocalServer) -> list[float]:
    return sorted(t for path, _, t in server.requests if path == "/api/query")


def test_two_clients_share_one_budget(settings: Settings, server: LocalServer, no_shutdown: None) -> None:
    server.route("/api/query", (200, EMPTY))
    paced = dataclasses.replace(settings, api_delay=0.5)
    clients = [ArxivClient(paced), ArxivClient.interactive(paced)]
    threads = [threading.Thread(target=lambda c=c: [c.fetch_by_ids(["1605.08386"]) for _ in range(3)])
               for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    times = _request_times(server)
    assert len(times) == 6
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.5 - JITTER


def test_another_process_on_the_state_directory_shares_the_budget(settings: Settings, server: LocalServer,
                                                                   no_shutdown: None) -> None:
    server.route("/api/query", (200, EMPTY))
    settings.ensure_home()
    script = (
        "import sys\n"
        "from recommender.config import load_settings\n"
        "from recommender.sources.arxiv import ArxivClient\n"
        "s = load_settings(env={}, home=sys.argv[1], api_url=sys.argv[2], api_delay=0.5, api_retries=0)\n"
        "c = ArxivClient(s)\n"
        "for _ in range(4):\n"
        "    c.fetch_by_ids(['2101.00001'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script, str(settings.home), settings.api_url], env=env,
                            cwd=ROOT, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: len(server.requests) >= 1 or proc.poll() is not None), "no request from the child"
        client = ArxivClient(dataclasses.replace(settings, api_delay=0.5))
        for _ in range(3):
            client.fetch_by_ids(["1605.08386"])
        assert proc.wait(TIMEOUT) == 0, proc.stderr.read().decode() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    times = _request_times(server)
    assert len(times) == 7
    own = [t for path, q, t in server.requests if q["id_list"] == ["1605.08386"]]
    child = [t for path, q, t in server.requests if q["id_list"] == ["2101.00001"]]
    assert min(own) < max(child)  # the two processes were requesting at the same time
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.5 - JITTER
    assert (settings.home / "arxiv_budget").is_file()


def fetch_in_thread(client: ArxivClient) -> tuple[list[BaseException], threading.Event, threading.Thread]:
    """Look one paper up on a daemon thread; returns what it raised, an event set when it ends, the thread."""
    outcome: list[BaseException] = []
    done = threading.Event()

    def fetch() -> None:
        try:
            client.fetch_by_ids(["1605.08386"])
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)
        done.set()

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    return outcome, done, worker


def test_request_shutdown_ends_a_backoff_at_once(settings: Settings, server: LocalServer,
                                                 no_shutdown: None) -> None:
    server.route("/api/query", (503, b"busy", {"Retry-After": "60"}))
    client = ArxivClient(dataclasses.replace(settings, api_retries=5))
    outcome, done, worker = fetch_in_thread(client)
    assert wait_for(lambda: len(server.requests) == 1)
    assert not done.wait(0.3)  # in its 60 s backoff
    request_shutdown()
    assert done.wait(2.0), "the client did not stop within 2 s of request_shutdown()"
    assert isinstance(outcome[0], ArxivShutdown) and isinstance(outcome[0], ArxivError)
    with pytest.raises(ArxivShutdown):  # and every later call fails at once, without a request
        ArxivClient(settings).fetch_by_ids(["1605.08386"])
    assert len(server.requests) == 1
    worker.join(TIMEOUT)


@pytest.mark.parametrize("stop", ["request_shutdown", "close"])
def test_a_request_to_a_silent_server_is_abandoned_on_stop(settings: Settings, server: LocalServer,
                                                           no_shutdown: None, stop: str) -> None:
    server.route("/api/query", ("hang", "30"))
    client = ArxivClient(dataclasses.replace(settings, api_timeout=30.0))
    outcome, done, _ = fetch_in_thread(client)
    assert wait_for(lambda: len(server.requests) == 1)
    request_shutdown() if stop == "request_shutdown" else client.close()
    assert done.wait(2.0), f"{stop} did not end the request within 2 s"
    assert isinstance(outcome[0], ArxivShutdown)
