"""What the bot's tests and benchmark share: the real engine on a fast embedder, a keyword classifier, settings, a
runner, and the fixtures ``demo_home``, ``demo_db``, ``demo_store``, ``fake`` (the fake Bot API server) and ``rt``
(a bot runtime over a copy of the demo papers). ``tests/conftest.py`` registers this module as a pytest plugin,
so test modules use the fixtures without importing them.

Bot tests run the production :class:`recommender.engine.core.Engine` (so the digest rules, the minimum score,
cross-lists and category-only users are production's by construction) with :class:`HashEmbedder`, a
deterministic hashed-words embedder that subclasses the real :class:`~recommender.embedding.embed.Embedder`.
The demo papers are embedded once per session (``demo_home``) and each test copies that state directory. The
shipped classifier takes seconds to load, so :class:`KeywordClassifier` stands in for it: it satisfies
:class:`recommender.interfaces.CategoryClassifier` and returns real
:class:`~recommender.classification.classify.Prediction` objects.
"""
from __future__ import annotations

import asyncio
import re
import shutil
import zlib
from collections.abc import Awaitable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pytest

from recommender.classification.classify import Prediction
from recommender.config import Settings, load_settings
from recommender.embedding.embed import Embedder
from recommender.engine.core import Engine
from recommender.interfaces import CategoryClassifier, RecommenderEngine
from recommender.sources.importer import import_file
from recommender.store import Store

if TYPE_CHECKING:
    from bot.telegram import Runtime
    from tests.support.fake_telegram import FakeTelegram

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo_papers.jsonl.gz"
LATEST = "2026-06-30"  # the demo sample's latest announcement day

T = TypeVar("T")
WORD = re.compile(r"[a-z]{3,}")


def words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


class HashEmbedder(Embedder):
    """A tiny deterministic embedder (hashed word counts, L2-normalised) for running the real Engine fast."""

    name = "hash-test"
    backend = "test"

    @property
    def dim(self) -> int:
        return 256

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for w in words(text):
                out[row, zlib.crc32(w.encode()) % self.dim] += 1.0
            out[row, 0] += 1e-3
        normed: np.ndarray = out / np.linalg.norm(out, axis=1, keepdims=True)
        return normed


def hash_engine(settings: Settings, store: Store) -> Engine:
    """The production engine over ``store`` with :class:`HashEmbedder` (no model to load)."""
    return Engine(settings, store, embedder=HashEmbedder())


class KeywordClassifier:
    """Stands in for the shipped SHA-RNN (seconds to load): astronomy words give astro-ph, anything else cs.LG."""

    meta: dict[str, Any] = {"name": "keywords-test"}
    names = {"astro-ph.GA": "Astrophysics of Galaxies", "astro-ph.CO": "Cosmology and Nongalactic Astrophysics",
             "cs.LG": "Machine Learning", "cs.AI": "Artificial Intelligence", "stat.ML": "Machine Learning"}

    def predict_batch(self, papers: Sequence[tuple[str, str]], batch_size: int = 256) -> list[Prediction]:
        return [self.predict(t, a) for t, a in papers]

    def predict(self, title: str, abstract: str) -> Prediction:
        w = words(title + " " + abstract)
        if not w:
            raise ValueError("nothing to classify: title and abstract are both empty")
        if w & {"galaxy", "galaxies", "stars", "stellar", "dark"}:
            return Prediction([("astro-ph.GA", 0.81), ("astro-ph.CO", 0.33)], [("Physics", 0.87)], self.names)
        return Prediction([("cs.LG", 0.72), ("cs.AI", 0.41), ("stat.ML", 0.2)],
                          [("Computer Science", 0.83), ("Statistics", 0.2)], self.names)


def _satisfies_the_interfaces(settings: Settings, store: Store) -> tuple[RecommenderEngine, CategoryClassifier]:
    """Never called: mypy checks here that the test doubles satisfy the library's Protocols."""
    return hash_engine(settings, store), KeywordClassifier()


def bot_settings(tmp: Path, telegram_url: str, **kw: Any) -> Settings:
    from tests.support.fake_telegram import TOKEN
    return load_settings(env={"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram_url}, home=tmp / "var",
                         api_delay=0.0, api_retries=1, **kw)


def run(coro: Awaitable[T], timeout: float = 120) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def copy_home(src: Path, settings: Settings) -> None:
    """Copy a prepared state directory (database, vectors, tf-idf index) into ``settings.home``."""
    shutil.copytree(src, settings.home, dirs_exist_ok=True)


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory holding the demo papers, embedded (HashEmbedder) and tf-idf indexed once per session;
    tests copy it (:func:`copy_home`)."""
    settings = load_settings(env={}, home=tmp_path_factory.mktemp("demo") / "var")
    settings.ensure_home()
    store = Store(settings.db_path, taxonomy=settings.taxonomy_path)
    import_file(store, DEMO)
    hash_engine(settings, store).embed_missing(progress=False)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return settings.home


@pytest.fixture(scope="session")
def demo_db(demo_home: Path) -> Path:
    """The demo papers' database (part of ``demo_home``)."""
    return demo_home / "arxiv_digest.sqlite"


@pytest.fixture
def demo_store(settings: Settings, demo_home: Path) -> Iterator[Store]:
    """A store over a private copy of ``demo_home`` in the ``settings`` state directory (vectors included, so
    ``hash_engine(settings, store)`` needs no embedding)."""
    copy_home(demo_home, settings)
    store = Store(settings.db_path, taxonomy=settings.taxonomy_path)
    yield store
    store.close()


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    from tests.support.fake_telegram import FakeTelegram
    with FakeTelegram() as f:
        yield f


@pytest.fixture
def rt(tmp_path: Path, fake: FakeTelegram, demo_home: Path) -> Iterator[Runtime]:
    """A bot runtime over a copy of the demo papers, with the real engine (HashEmbedder) and the keyword
    classifier."""
    yield from demo_runtime(bot_settings(tmp_path, fake.base_url), demo_home)


def demo_runtime(settings: Settings, demo_home: Path) -> Iterator[Runtime]:
    """The body of a runtime fixture: a copy of the demo state under ``settings``, the real engine (HashEmbedder)
    and the keyword classifier; closed after the test."""
    from bot.commands import Commands
    from bot.telegram import Runtime
    copy_home(demo_home, settings)
    store = Store(settings.db_path, taxonomy=settings.taxonomy_path)
    r = Runtime(settings, store, Commands(settings, store, engine_factory=lambda: hash_engine(settings, store),
                                          classifier_factory=KeywordClassifier))
    yield r
    r.close()
    store.close()
