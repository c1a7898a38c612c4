"""Ingestion through the real RSS client against a local feed server, and the command line end to end."""
from __future__ import annotations

import dataclasses
import json
from datetime import date
from typing import Any

import pytest

from recommender.cli.main import main
from recommender.config import Settings
from recommender.engine.pipeline import ensure_demo_corpus, fetch_feed
from recommender.engine.pipeline import ingest as ingest_feed
from recommender.models import Paper
from recommender.store import Store, UnknownCategory
from tests.support.arxiv_xml import rss_feed
from tests.support.local_server import LocalServer

from .conftest import DEMO, FIXTURES


def ingest(settings: Settings, store: Store, categories: list[str], **steps: Any) -> Any:
    """Fetch the listing from the local feed server, then store it (what ``arxiv-digest ingest`` does)."""
    return ingest_feed(settings, store, fetch_feed(settings, store, categories), categories, **steps)


def day_listing(demo_papers: list[Paper], n: int = 30) -> list[tuple[Paper, str]]:
    papers = [p for p in demo_papers if p.announced == "2026-06-30"][:n]
    return [(p, "new") for p in papers[:20]] + [(p, "cross") for p in papers[20:25]] + \
        [(p, "replace") for p in papers[25:]]


def test_ingest_is_idempotent_and_replacements_are_not_new(settings: Settings, store: Store, server: LocalServer,
                                                          demo_papers: list[Paper]) -> None:
    items = day_listing(demo_papers)
    server.route("/rss/cs.LG+stat.ML", (200, rss_feed(["cs.LG", "stat.ML"], date(2026, 7, 1), items)))
    r1 = ingest(settings, store, ["cs.LG", "stat.ML"])
    assert (r1.announced, r1.new, r1.cross, r1.replaced, r1.inserted) == ("2026-07-01", 20, 5, 5, 30)
    r2 = ingest(settings, store, ["cs.LG", "stat.ML"])
    assert (r2.inserted, r2.updated, r2.unchanged) == (0, 0, 30)
    assert len(store.announced_ids("2026-07-01", types=("new",))) == 20
    assert len(store.announced_ids("2026-07-01", types=("new", "cross"))) == 25
    replaced = items[-1][0]
    assert store.get_paper(replaced.id).announced is None  # first seen as a replacement: never "new"
    # the next day the same papers come back as replacements with a new version
    v2 = [(dataclasses.replace(p, version=p.version + 1, title=p.title + " (revised)"), "replace")
          for p, _ in items[:3]]
    server.route("/rss/cs.LG+stat.ML", (200, rss_feed(["cs.LG", "stat.ML"], date(2026, 7, 2), v2)))
    refreshed: list[str] = []

    def embed(ids: list[str]) -> int:
        refreshed.extend(ids)
        return len(ids)

    r3 = ingest(settings, store, ["cs.LG", "stat.ML"], embed=embed)
    assert r3.updated == 3 and r3.inserted == 0
    assert sorted(refreshed) == sorted(p.id for p, _ in v2) and r3.embedded == 3
    got = store.get_paper(items[0][0].id)
    assert got.title.endswith("(revised)") and got.announced == "2026-07-01"
    assert store.announced_ids("2026-07-02", types=("new", "cross")) == []


def test_ingest_empty_feed_and_errors(settings: Settings, store: Store, server: LocalServer) -> None:
    server.route("/rss/cs.LG", (200, rss_feed(["cs.LG"], None, [])))
    report = ingest(settings, store, ["cs.LG"])
    last = store.last_feed_fetch()
    assert report.announced is None and last is not None and last["announced"] is None
    with pytest.raises(UnknownCategory):
        ingest(settings, store, ["cs.LGX"])


def test_ingest_step_failure_keeps_listing(settings: Settings, store: Store, server: LocalServer,
                                           demo_papers: list[Paper]) -> None:
    server.route("/rss/cs.LG", (200, rss_feed(["cs.LG"], date(2026, 7, 1), day_listing(demo_papers, 5))))

    def broken(changed: list[str]) -> int:
        raise RuntimeError("model exploded")

    report = ingest(settings, store, ["cs.LG"], embed=broken, classify=lambda ids: len(ids))
    assert report.inserted == 5 and report.classified == 5 and "model exploded" in report.errors[0]


def test_demo_corpus_loaded_once(settings: Settings, store: Store) -> None:
    assert ensure_demo_corpus(settings, store, progress=False) > 2000
    assert ensure_demo_corpus(settings, store, progress=False) == 0


def test_cli_import_stats_fetch(cli_env: Settings, server: LocalServer, capsys: pytest.CaptureFixture) -> None:
    assert main(["import", str(FIXTURES / "kaggle_snapshot_sample.jsonl"), "--categories", "hep-ph,math",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["inserted"] > 0 and out["skipped_category"] > 0
    assert main(["stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["papers"] == out["inserted"]
    body = (FIXTURES / "arxiv_api" / "id_2104.12255v1_s0_m100_6ae69987ffe1.body.xml").read_bytes()
    server.route("/api/query", (200, body))
    assert main(["fetch", "https://arxiv.org/abs/2104.12255v1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["papers"][0]["id"] == "2104.12255"


def test_cli_bad_input_is_one_line(cli_env: Settings, capsys: pytest.CaptureFixture) -> None:
    assert main(["fetch", "banana"]) == 2
    err = capsys.readouterr().err
    assert "banana" in err and "Traceback" not in err
    assert main(["import", str(DEMO), "--categories", "cs.LGX"]) == 2
    assert "Did you mean" in capsys.readouterr().err
    assert main(["import", "/no/such/file.jsonl"]) == 2


def test_cli_ingest_no_announcement(cli_env: Settings, server: LocalServer, capsys: pytest.CaptureFixture) -> None:
    server.route("/rss/cs.LG", (200, rss_feed(["cs.LG"], None, [])))
    assert main(["ingest", "--categories", "cs.LG", "--no-models"]) == 0
    assert "no announcement" in capsys.readouterr().out
    server.route("/rss/cs.LG", (200, b"<html><body>Service unavailable</body></html>"))
    assert main(["ingest", "--categories", "cs.LG", "--no-models"]) == 2
    assert "RSS" in capsys.readouterr().err
