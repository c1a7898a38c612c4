"""arXiv I/O: RSS and API parsing on real/arXiv-format feeds, and the HTTP client against a local server."""
from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from datetime import date

import pytest

from recommender.config import Settings
from recommender.models import Paper
from recommender.sources.arxiv import ArxivClient, ArxivError, parse_api, parse_rss
from tests.support.arxiv_xml import rss_feed
from tests.support.local_server import LocalServer

from .conftest import FIXTURES

API = FIXTURES / "arxiv_api"


def listing(papers: list[Paper]) -> list[tuple[Paper, str]]:
    types = ["new", "cross", "replace", "replace-cross"]
    return [(p, types[i % 4]) for i, p in enumerate(papers)]


def test_parse_rss_types_and_fields(demo_papers: list[Paper]) -> None:
    papers = [p for p in demo_papers if p.announced == "2026-06-30"][:8]
    tricky = dataclasses.replace(papers[0], title="Bounds on $<x>$ & the A_b*c problem", version=2)
    feed = parse_rss(rss_feed(["cs.LG", "stat.ML"], date(2026, 6, 30), listing([tricky] + papers[1:])))
    assert feed.announced == "2026-06-30"
    assert [p.announce_type for p in feed.papers[:4]] == ["new", "cross", "replace", "replace-cross"]
    assert len(feed.new) == 2 and len(feed.cross) == 2 and len(feed.replaced) == 4
    first = feed.papers[0]
    assert first.title == "Bounds on $<x>$ & the A_b*c problem" and first.version == 2
    assert first.id == papers[0].id and first.authors == papers[0].authors
    assert first.categories == papers[0].categories
    assert first.abstract == papers[0].abstract.strip() and not first.abstract.startswith("arXiv:")


def test_empty_channel_means_no_announcement() -> None:
    feed = parse_rss(rss_feed(["cs.LG"], None, []))
    assert feed.announced is None and feed.papers == []


@pytest.mark.parametrize("body", [
    b"<html><head><title>503 Service Unavailable</title></head><body><h1>Down</h1></body></html>",
    b"<?xml version='1.0'?><rss version='2.0'><channel><title>x</title><item><title>unclosed",
    b"",
    b"\x00\x01garbage",
])
def test_bad_feeds_raise_clear_errors(body: bytes) -> None:
    with pytest.raises(ArxivError):
        parse_rss(body)


def test_parse_real_api_responses() -> None:
    papers, total = parse_api((API / "q_testing_s0_m100_cfe7536492ca.body.xml").read_bytes())
    assert len(papers) == 100 and total == 214881
    p = papers[0]
    assert p.id == "2202.12139" and p.version == 1 and p.categories[:2] == ["cs.SE", "cs.LG"]
    assert p.doi == "10.1109/ICSTW55395.2022.00035" and p.journal_ref and p.comment
    old, _ = parse_api((API / "id_astro-ph_0601001_s0_m100_3150dca9dc76.body.xml").read_bytes())
    assert old[0].id == "astro-ph/0601001"
    legacy, _ = parse_api((API / "id_list=1111.2011v2.xml").read_bytes())  # 2016 format
    assert legacy[0].id == "1111.2011" and legacy[0].version == 2 and legacy[0].categories[0] == "cond-mat.str-el"
    none, total = parse_api((API / "id_0000.0000_s0_m100_8b51d9633a68.body.xml").read_bytes())
    assert none == [] and total == 0
    with pytest.raises(ArxivError, match="incorrect id format"):
        parse_api((API / "id_abc_s0_m100_b79c8dcf6bc3.body.xml").read_bytes())


def test_fetch_by_ids_against_local_server(settings: Settings, server: LocalServer) -> None:
    body = (API / "id_2104.12255v1_s0_m100_6ae69987ffe1.body.xml").read_bytes()
    server.route("/api/query", (200, body))
    client = ArxivClient(settings)
    papers = client.fetch_by_ids(["https://arxiv.org/abs/2104.12255v1"])
    assert [p.id for p in papers] == ["2104.12255"]
    assert server.requests[0][1]["id_list"] == ["2104.12255"]


def test_backoff_on_429_then_200(settings: Settings, server: LocalServer) -> None:
    body = (API / "id_1605.08386_s0_m100_199195aa31ad.body.xml").read_bytes()
    server.route("/api/query", (429, b"slow down", {"Retry-After": "2"}), (503, b"busy"), (200, body))
    sleeps: list[float] = []
    client = ArxivClient(dataclasses.replace(settings, api_delay=0.5), sleep=sleeps.append)
    papers = client.fetch_by_ids(["1605.08386"])
    assert [p.id for p in papers] == ["1605.08386"]
    assert len(server.requests) == 3
    backoffs = [s for s in sleeps if s >= 0.5]
    assert backoffs[0] >= 2.0  # Retry-After honoured
    assert backoffs[1] >= 1.0  # exponential: 0.5 * 2**1


def test_gives_up_after_retries(settings: Settings, server: LocalServer) -> None:
    server.route("/api/query", (500, b"oops"))
    client = ArxivClient(dataclasses.replace(settings, api_retries=2), sleep=lambda s: None)
    with pytest.raises(ArxivError, match="gave up after 3 attempts"):
        client.fetch_by_ids(["1605.08386"])
    assert len(server.requests) == 3


def test_timeout_is_retried(settings: Settings, server: LocalServer) -> None:
    body = (API / "id_1605.08386_s0_m100_199195aa31ad.body.xml").read_bytes()
    server.route("/api/query", ("hang", "1.0"), (200, body))
    client = ArxivClient(dataclasses.replace(settings, api_timeout=0.3), sleep=lambda s: None)
    assert [p.id for p in client.fetch_by_ids(["1605.08386"])] == ["1605.08386"]


def test_pacing_one_request_per_delay(settings: Settings, server: LocalServer) -> None:
    body = (API / "id_0000.0000_s0_m100_8b51d9633a68.body.xml").read_bytes()
    server.route("/api/query", (200, body))
    client = ArxivClient(dataclasses.replace(settings, api_delay=0.3))
    for _ in range(3):
        client.fetch_by_ids(["1605.08386"])
    times = [t for _, _, t in server.requests]
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.25  # 0.3 less the server's stamping jitter


def test_harvest_pages_and_empty_page_patience(settings: Settings, server: LocalServer) -> None:
    pages = {0: "q_testing_s0_m10_bc5a6c384fe9", 10: "q_testing_s10_m10_34e56e15aaac",
             20: "q_testing_s20_m10_348a237fecab"}

    def answer(path: str, query: dict[str, list[str]]) -> tuple[int, bytes]:
        start = int(query["start"][0])
        body = (API / f"{pages[start]}.body.xml").read_bytes() if start in pages else \
            (API / "id_0000.0000_s0_m100_8b51d9633a68.body.xml").read_bytes().replace(
                b"<opensearch:totalResults>0", b"<opensearch:totalResults>214881")
        return 200, body

    server.route("/api/query", answer)
    client = ArxivClient(dataclasses.replace(settings, api_empty_page_retries=2), sleep=lambda s: None)
    got: list[Paper] = []
    with pytest.raises(ArxivError, match="empty pages"):
        for p in client.harvest("cs.SE", date(2025, 1, 1), date(2025, 1, 31), page_size=10):
            got.append(p)
    assert len(got) == 30
    q = server.requests[0][1]["search_query"][0]
    assert "cat:cs.SE" in q and "submittedDate:[202501010000 TO 202501312359]" in q
    assert len(server.requests) == 3 + 3  # three pages, then the first empty page and two retries


def test_rss_url_joins_categories(settings: Settings) -> None:
    client = ArxivClient(settings)
    assert client.rss_url(["cs.LG", "stat.ML"]).endswith("/rss/cs.LG+stat.ML")


def test_retry_after_holds_back_every_client_of_the_process(settings: Settings, server: LocalServer) -> None:
    """A 429's Retry-After pushes the shared budget: another client does not ask arXiv again before it ends."""
    body = (API / "id_0000.0000_s0_m100_8b51d9633a68.body.xml").read_bytes()
    server.route("/api/query", (429, b"slow down", {"Retry-After": "1"}), (200, body))
    paced = dataclasses.replace(settings, api_delay=0.1)
    first = threading.Thread(target=lambda: ArxivClient(paced).fetch_by_ids(["1605.08386"]))
    first.start()
    deadline = time.monotonic() + 30
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.requests, "the first client never reached the server"
    ArxivClient(paced).fetch_by_ids(["2101.00001"])  # another client, right after the 429
    first.join(30)
    times = [t for _, _, t in server.requests]
    assert len(times) == 3
    assert min(times[1:]) - times[0] >= 1.0 - 0.1  # the server stamps arrivals on a busy thread
