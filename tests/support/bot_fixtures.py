"""Helpers for the bot's tests and benchmark: a lexical stand-in engine and classifier, a hashed-words embedder,
settings, a runner, and the fixtures ``demo_db``, ``fake`` (the fake Bot API server) and ``rt`` (a bot runtime
over a copy of the demo papers) that test modules import.

The stand-ins implement the interfaces of ``recommender.engine.core.Engine`` and ``recommender.classification.classify`` with
word overlap over the real demo papers, so bot tests run in seconds and test the bot, not the models;
``real_engine_or_skip`` gives the real engine for the tests that exercise it.
"""
from __future__ import annotations

import asyncio
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Iterator

import pytest

from recommender.config import Settings, load_settings
from recommender.sources.importer import import_file
from recommender.models import Paper
from recommender.store import Store

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo_papers.jsonl.gz"
LATEST = "2026-06-30"  # the demo sample's latest announcement day

WORD = re.compile(r"[a-z]{3,}")


def words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


@dataclass
class Rec:
    paper: Paper
    score: float
    why: str = ""
    nearest_id: str | None = None
    nearest_cos: float | None = None


class LexicalEngine:
    """Jaccard similarity over title+abstract words; same method names and results as the real Engine."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._bags: dict[str, set[str]] = {}

    def _bag(self, p: Paper) -> set[str]:
        if p.id not in self._bags:
            self._bags[p.id] = words(p.title + " " + p.abstract)
        return self._bags[p.id]

    def embed_missing(self, progress: bool = False) -> int:
        return 0

    def ensure_papers(self, ids: list[str]) -> dict[str, Paper]:
        return self.store.get_papers(ids)

    def _rank(self, query: set[str], candidates: list[Paper], n: int, exclude: set[str]) -> list[Rec]:
        scored = []
        for p in candidates:
            if p.id in exclude:
                continue
            bag = self._bag(p)
            s = len(query & bag) / (len(query | bag) or 1)
            scored.append(Rec(p, round(s, 4)))
        scored.sort(key=lambda r: (-r.score, r.paper.id))
        return scored[:n]

    def similar(self, query: str, n: int = 5) -> list[Rec]:
        p = self.store.get_paper(query)
        q = self._bag(p) if p else words(query)
        return self._rank(q, list(self.store.iter_papers()), n, {p.id} if p else set())

    def digest(self, user_id: int, day: str, n: int | None = None) -> list[Rec]:
        user = self.store.get_user(user_id)
        assert user is not None
        q = words(user.interests)
        for p in self.store.get_papers(self.store.liked_ids(user_id)).values():
            q |= self._bag(p)
        ids = self.store.announced_ids(day, categories=user.categories or None)
        done = self.store.delivered_ids(user_id) | {f[0] for f in self.store.feedback(user_id)}
        recs = self._rank(q, list(self.store.get_papers(ids).values()), n or user.digest_size, done)
        for r in recs:
            r.why = f"shares {len(q & self._bag(r.paper))} words with your profile"
        return recs


@dataclass
class Pred:
    categories: list[tuple[str, float]]
    masters: list[tuple[str, float]]
    names: dict[str, str]
    unknown_ratio: float = 0.0


class KeywordClassifier:
    meta = {"name": "keywords-test"}

    def predict_batch(self, papers: list[tuple[str, str]], batch_size: int = 256) -> list[Pred]:
        return [self.predict(t, a) for t, a in papers]

    def predict(self, title: str, abstract: str) -> Pred:
        w = words(title + " " + abstract)
        if not w:
            raise ValueError("nothing to classify: title and abstract are both empty")
        if w & {"galaxy", "galaxies", "stars", "stellar", "dark"}:
            return Pred([("astro-ph.GA", 0.81), ("astro-ph.CO", 0.33)], [("Physics", 0.87)], {})
        return Pred([("cs.LG", 0.72), ("cs.AI", 0.41), ("stat.ML", 0.2)], [("Computer Science", 0.83),
                                                                         ("Statistics", 0.2)], {})


def bot_settings(tmp: Path, api_url: str, **kw: Any) -> Settings:
    from tests.support.fake_telegram import TOKEN
    return load_settings(env={"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": api_url}, home=tmp / "var",
                         api_delay=0.0, api_retries=1, **kw)


def run(coro: Awaitable[Any], timeout: float = 120) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


class HashEmbedder:
    """A tiny deterministic embedder (hashed word counts, L2-normalised) for running the real Engine fast."""

    name = "hash-test"
    backend = "test"
    dim = 256

    @property
    def key(self) -> str:
        return f"{self.name}|{self.dim}"

    def encode(self, texts: Any, batch_size: int = 32, progress: bool = False) -> Any:
        import zlib

        import numpy as np
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for w in words(text):
                out[row, zlib.crc32(w.encode()) % self.dim] += 1.0
            out[row, 0] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def encode_one(self, text: str) -> Any:
        return self.encode([text])[0]


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo papers imported once per session; tests copy the file."""
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    store = Store(path, taxonomy=ROOT / "data" / "taxonomy.json")
    import_file(store, DEMO)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return path


@pytest.fixture
def fake() -> Iterator[Any]:
    from tests.support.fake_telegram import FakeTelegram
    with FakeTelegram() as f:
        yield f


@pytest.fixture
def rt(tmp_path: Path, fake: Any, demo_db: Path) -> Iterator[Any]:
    """A bot runtime over a copy of the demo papers, with the lexical engine and keyword classifier."""
    from bot.commands import Commands
    from bot.telegram import Runtime
    settings = bot_settings(tmp_path, fake.base_url)
    settings.ensure_home()
    shutil.copy(demo_db, settings.db_path)
    store = Store(settings.db_path, taxonomy=settings.taxonomy_path)
    r = Runtime(settings, store, Commands(settings, store, engine_factory=lambda: LexicalEngine(store),
                                          classifier_factory=KeywordClassifier))
    yield r
    r.close()
    store.close()
