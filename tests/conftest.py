"""Shared test fixtures: settings in a temporary state directory, a store, a local HTTP server, real papers.

Real data comes from ``tests/fixtures`` (small copies) and ``data/demo_papers.jsonl.gz`` (the shipped demo
sample); tests that need the whole shared corpus use ``shared_corpus`` and skip cleanly where it is absent.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from recommender.config import Settings, load_settings
from recommender.models import Paper
from recommender.sources.importer import iter_file
from recommender.store import Store
from tests.support.local_server import LocalServer

# models are never downloaded in tests (read when a model loads, long after this module is imported)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# the bot's fixtures (demo_home, demo_db, demo_store, fake, rt), available to every test module
pytest_plugins = ["tests.support.bot_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
DEMO = ROOT / "data" / "demo_papers.jsonl.gz"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def demo_papers() -> list[Paper]:
    """The shipped demo sample: real papers, the last two announcement days plus every category."""
    return list(iter_file(DEMO))


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer()
    yield srv
    srv.close()


@pytest.fixture
def settings(tmp_path: Path, server: LocalServer) -> Settings:
    """Settings in a fresh state directory, every base URL pointing at the local server, no API delay."""
    return load_settings(env={}, home=tmp_path / "var", rss_url=f"{server.url}/rss",
                         api_url=f"{server.url}/api/query", telegram_api_url=f"{server.url}/bot",
                         api_delay=0.0, api_retries=3)


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The same settings, through the environment, for commands run via ``recommender.cli.main``."""
    monkeypatch.setenv("ARXIV_DIGEST_HOME", str(settings.home))
    monkeypatch.setenv("ARXIV_DIGEST_RSS_URL", settings.rss_url)
    monkeypatch.setenv("ARXIV_DIGEST_API_URL", settings.api_url)
    monkeypatch.setenv("ARXIV_DIGEST_API_DELAY", "0")
    return settings


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    settings.ensure_home()
    s = Store(settings.db_path, taxonomy=settings.taxonomy_path)
    yield s
    s.close()


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    path = SHARED_DATA / "arxiv_corpus.jsonl.gz"
    if not path.is_file():
        pytest.skip("../shared/data/arxiv_corpus.jsonl.gz is not available")
    return path
