"""``arxiv-digest harvest``: both routes against a fake arXiv on a local server (real papers from the demo sample,
real feedparser, sickle and SQLite): paging through faults, OAI-PMH resumption tokens and flow control,
resumption after a stop without asking again for finished pages, idempotence, route choice, bad input, and
harvested papers never becoming "today's" announcement."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from recommender import paths
from recommender.cli.main import main
from recommender.config import Settings, load_settings
from recommender.models import Paper
from recommender.ranking.digest import digest_candidates
from recommender.sources import harvest as harvest_mod
from recommender.sources.arxiv import request_shutdown, reset_shutdown
from recommender.sources.harvest import (
    Harvester,
    HarvestReport,
    choose_route,
    month_windows,
    oai_windows,
    resolve_targets,
)
from recommender.store import Store
from recommender.store.schema import MIGRATIONS, migrate
from recommender.taxonomy import read_taxonomy
from tests.support.local_server import LocalServer
from tests.support.oai_xml import FakeArxiv, with_days

from .conftest import ROOT

FIRST, LAST = date(2026, 1, 1), date(2026, 3, 31)
CATS = ["cs.LG", "stat.ML"]
RANGE = ["--from", FIRST.isoformat(), "--to", LAST.isoformat()]


@pytest.fixture
def fake(demo_papers: list[Paper], server: LocalServer, cli_env: Settings,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArxiv]:
    """A fake arXiv holding 1,000 real demo papers submitted over Jan-Mar 2026, served by the local server; the
    command line points at it with no delay, 20 API results or OAI records a page and 3 retries (small pages:
    feedparser takes ~10 ms an entry, so the tests harvest few papers over many pages)."""
    arxiv = FakeArxiv(with_days(demo_papers[:1000], FIRST, 90), page_size=20)
    server.route("/api/query", arxiv.api)
    server.route("/oai", arxiv.oai)
    monkeypatch.setenv("ARXIV_DIGEST_OAI_URL", f"{server.url}/oai")
    monkeypatch.setenv("ARXIV_DIGEST_API_PAGE_SIZE", "20")
    monkeypatch.setenv("ARXIV_DIGEST_API_RETRIES", "3")
    reset_shutdown()
    yield arxiv
    reset_shutdown()


def harvest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    """Run ``arxiv-digest harvest ARGS --json``: (exit status, the JSON summary or {}, stderr)."""
    status = main(["harvest", *args, "--json"])
    out, err = capsys.readouterr()
    return status, (json.loads(out) if out.strip() else {}), err


def expected_ids(fake: FakeArxiv, cats: list[str]) -> set[str]:
    lo, hi = FIRST.isoformat(), LAST.isoformat()
    return {p.id for p, _ in fake.papers if set(p.categories) & set(cats) and lo <= (p.published or "")[:10] <= hi}


def stored(settings: Settings) -> dict[str, tuple[object, ...]]:
    """Every stored paper row (without the storing time) by id, to compare stores."""
    conn = sqlite3.connect(settings.db_path)
    try:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(papers)") if r[1] != "stored_at"]
        return {r[0]: tuple(r) for r in conn.execute(f"SELECT {','.join(cols)} FROM papers")}
    finally:
        conn.close()


def api_starts(server: LocalServer, since: int = 0) -> list[tuple[str, int]]:
    """(search_query, start) of every API request from the ``since``-th on."""
    return [(q["search_query"][0], int(q["start"][0])) for path, q, _ in server.requests[since:]
            if path == "/api/query"]


# -- the query API ------------------------------------------------------------------------------------------
def test_api_harvest_pages_through_a_503_a_429_and_an_empty_page(
        fake: FakeArxiv, server: LocalServer, cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    want = expected_ids(fake, CATS)
    assert len(want) > 100  # several pages of 20 in each month window
    fake.faults = {("api", 2): (503, "<html>busy</html>", {"Retry-After": "0"}),
                   ("api", 4): (429, "slow down", {"Retry-After": "0"}),
                   ("api", 6): fake.empty_api_page(len(want))}
    status, summary, _ = harvest(capsys, *CATS, *RANGE, "--via", "api")
    assert status == 0, summary
    papers = summary["papers"]
    assert papers == {"new": len(want), "updated": 0, "unchanged": 0}
    assert summary["route"] == "api" and summary["windows"] == 3 and summary["pages"] >= len(want) / 20
    with Store(cli_env.db_path) as store:
        got = store.get_papers(sorted(want))
        assert set(got) == want and store.count_papers() == len(want)
        one = next(p for p in fake.papers if p[0].id in want)[0]
        assert got[one.id].title == one.title and got[one.id].authors == one.authors
        assert got[one.id].abstract == one.abstract.strip() and got[one.id].categories == one.categories
        assert {p.source for p in got.values()} == {"harvest-api"}
        assert {p.announced for p in got.values()} == {None}
        assert store.latest_announcement() is None and store.announcement_days() == []
    queries = [q for q, _ in api_starts(server)]
    assert all(q.startswith("(cat:cs.LG OR cat:stat.ML) AND submittedDate:[") for q in queries)
    assert {q.split("submittedDate:")[1] for q in queries} == {
        "[202601010000 TO 202601312359]", "[202602010000 TO 202602282359]", "[202603010000 TO 202603312359]"}
    # the failed and the empty answers were asked again: 3 extra requests
    ok_pages = summary["pages"]
    assert len(queries) == ok_pages + 3


def test_api_error_entry_exits_2_in_one_line_and_keeps_finished_pages(
        fake: FakeArxiv, server: LocalServer, cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.arxiv_xml import api_error_feed
    fake.faults = {("api", 2): (200, api_error_feed("incorrect query format"))}
    status, summary, err = harvest(capsys, *CATS, *RANGE, "--via", "api")
    assert status == 2 and summary == {}
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arxiv-digest harvest: arXiv API error: incorrect query format")
    assert "Traceback" not in err and "1 pages stored" in lines[0]
    with Store(cli_env.db_path) as store:
        assert store.count_papers() == 20  # the page before the error, none of the failing one
        window = store.harvest_windows("api")[0]
        assert window.status == "pending" and window.cursor == "20" and window.pages == 1


def test_a_window_deeper_than_the_api_pages_is_split(
        fake: FakeArxiv, server: LocalServer, cli_env: Settings, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harvest_mod, "API_MAX_DEPTH", 25)
    want = expected_ids(fake, CATS)
    status, summary, _ = harvest(capsys, *CATS, *RANGE, "--via", "api")
    assert status == 0 and summary["papers"]["new"] == len(want) and summary["windows_split"] >= 3
    assert max(start for _, start in api_starts(server)) < 25
    with Store(cli_env.db_path) as store:
        assert store.count_papers() == len(want)
        assert {w.status for w in store.harvest_windows("api")} == {"done", "split"}


# -- OAI-PMH ------------------------------------------------------------------------------------------------
def test_oai_harvest_with_resumption_tokens_flow_control_and_no_records_match(
        fake: FakeArxiv, server: LocalServer, cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    fake.faults = {("oai", 2): (503, "<html>Retry later</html>", {"Retry-After": "1"})}
    status, summary, _ = harvest(capsys, "cs.LG", *RANGE, "--via", "oai")
    assert status == 0, summary
    stamps = [t for path, _, t in server.requests if path == "/oai"]
    assert stamps[2] - stamps[1] >= 0.9  # the 503's Retry-After was honoured (the request delay is 0)
    want = expected_ids(fake, ["cs.LG"])
    assert summary["route"] == "oai" and summary["papers"]["new"] == len(want)
    oai = [q for path, q, _ in server.requests if path == "/oai"]
    firsts = [q for q in oai if "metadataPrefix" in q]
    assert {q["set"][0] for q in firsts} == {"cs:cs:LG"} and {q["metadataPrefix"][0] for q in firsts} == {"arXiv"}
    tokens = [q["resumptionToken"][0] for q in oai if "resumptionToken" in q]
    assert len(tokens) >= 2  # pages of 20 records
    # datestamps from --from to today, month by month: the months after March answer noRecordsMatch, except
    # those holding records changed after submission (kept: submitted in range; or skipped: outside it)
    assert firsts[0]["from"] == ["2026-01-01"] and firsts[0]["until"] == ["2026-01-31"]
    assert len(firsts) == len(oai_windows(FIRST, date.today()))
    assert len(oai) == summary["pages"] + 1  # +1: the 503 asked again
    with Store(cli_env.db_path) as store:
        got = store.get_papers(sorted(want))
        assert set(got) == want and store.count_papers() == len(want)
        one = got[sorted(want)[0]]
        orig = next(p for p, _ in fake.papers if p.id == one.id)
        assert one.title == orig.title and one.authors == orig.authors and one.categories == orig.categories
        assert one.abstract == orig.abstract.strip() and one.source == "harvest-oai" and one.announced is None
        assert one.published == (orig.published or "")[:10] + "T00:00:00Z"


def test_both_routes_bring_the_same_papers(
        fake: FakeArxiv, cli_env: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert harvest(capsys, *CATS, *RANGE, "--via", "api")[0] == 0
    api_ids = set(stored(cli_env))
    monkeypatch.setenv("ARXIV_DIGEST_HOME", str(tmp_path / "other"))
    assert harvest(capsys, *CATS, *RANGE, "--via", "oai")[0] == 0
    oai_ids = set(stored(load_settings(env={}, home=tmp_path / "other")))
    assert api_ids == oai_ids == expected_ids(fake, CATS)


def test_an_archive_harvests_its_categories_through_its_set(
        fake: FakeArxiv, server: LocalServer, cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    status, summary, _ = harvest(capsys, "astro-ph", *RANGE)
    assert status == 0 and summary["route"] == "oai" and "whole archive astro-ph" in summary["reason"]
    sets = {q["set"][0] for path, q, _ in server.requests if path == "/oai" and "set" in q}
    assert sets == {"physics:astro-ph"}
    want = {p.id for p, _ in fake.papers if any(c.split(".")[0] == "astro-ph" for c in p.categories)
            and FIRST.isoformat() <= (p.published or "")[:10] <= LAST.isoformat()}
    assert len(want) > 40 and set(stored(cli_env)) == want


def test_progress_bar_and_the_follow_up_without_json(
        fake: FakeArxiv, cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["harvest", "stat.ML", "--from", "2026-01-01", "--to", "2026-01-20"]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[0].startswith("harvest stat.ML 2026-01-01..2026-01-20 via api (1 category over 20 days")
    assert " new, 0 updated, 0 unchanged papers" in lines[1] and "pages/s" in lines[1]
    assert lines[2].startswith("next: arxiv-digest embed (vectors), then arxiv-digest classify-store")
    assert "harvest via api" in err and "pages=" in err  # the bar, on stderr


# -- resumption -----------------------------------------------------------------------------------------------
def test_api_harvest_stopped_by_a_refusing_server_resumes_without_asking_again(
        fake: FakeArxiv, server: LocalServer, cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    fake.refuse_after = {"api": 5}
    status, _, err = harvest(capsys, *CATS, *RANGE, "--via", "api")
    assert status == 2 and "gave up after 4 attempts" in err and "5 pages stored" in err
    first_run = api_starts(server)[:5]
    kept = set(stored(cli_env))
    assert 0 < len(kept) < len(expected_ids(fake, CATS))
    fake.refuse_after = {}
    mark = len(server.requests)
    status, summary, _ = harvest(capsys, *CATS, *RANGE, "--via", "api")
    assert status == 0 and summary["papers"] == {"new": len(expected_ids(fake, CATS)) - len(kept), "updated": 0,
                                                 "unchanged": 0}
    second_run = api_starts(server, mark)
    assert not set(first_run) & set(second_run)  # no finished page asked again
    assert len(second_run) == summary["pages"]
    assert set(stored(cli_env)) == expected_ids(fake, CATS)


def test_oai_harvest_stopped_by_request_shutdown_resumes_from_its_token(
        fake: FakeArxiv, server: LocalServer, cli_env: Settings) -> None:
    settings = load_settings()
    fake.page_size = 8  # January then takes several pages
    pages: list[int] = []

    def stop_after_two(report: HarvestReport, n: int) -> None:
        pages.append(n)
        if report.pages == 2:
            request_shutdown()

    with Store(settings.db_path, taxonomy=paths.TAXONOMY) as store, \
            Harvester(settings, store, progress=stop_after_two) as h:
        report = h.run(["cs.LG"], FIRST, LAST, via="oai")
    assert report.interrupted and report.pages == 2 and len(pages) == 2
    tokens_before = [q["resumptionToken"][0] for path, q, _ in server.requests if "resumptionToken" in q]
    assert len(tokens_before) == 1  # the second page; its token for the third is stored, not yet used
    with Store(settings.db_path) as store:
        window = store.harvest_windows("oai")[0]
        assert window.status == "pending" and window.cursor and window.pages == 2
        stored_token = window.cursor
    reset_shutdown()
    mark = len(server.requests)
    with Store(settings.db_path) as store, Harvester(settings, store) as h:
        report = h.run(["cs.LG"], FIRST, LAST, via="oai")
    assert not report.interrupted
    resumed = server.requests[mark][1]
    assert resumed["resumptionToken"] == [stored_token]  # went on from the stored token, not the first page
    again = [q for _, q, _ in server.requests[mark:] if q.get("from") == ["2026-01-01"]]
    assert again == []  # January's first page was not asked again
    assert set(stored(settings)) == expected_ids(fake, ["cs.LG"])


@pytest.mark.slow
def test_sigterm_stops_a_harvest_and_the_same_command_goes_on(
        fake: FakeArxiv, server: LocalServer, cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """A real process: SIGTERM while it waits for an answer (the 4th request hangs) ends it with status 130 and
    its summary; the same command then asks only for what is missing."""
    fake.faults = {("api", 4): ("hang", "60")}
    proc = subprocess.Popen([sys.executable, "-m", "recommender.cli.main", "harvest", *CATS, *RANGE, "--via", "api",
                             "--json"], cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180  # the import alone takes a while on a busy machine
        while len(api_starts(server)) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(api_starts(server)) == 4, proc.poll()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["interrupted"] and summary["pages"] == 3
    first_run = api_starts(server)[:3]
    assert len(stored(cli_env)) == summary["papers"]["new"] > 0
    mark = len(server.requests)
    status, again, _ = harvest(capsys, *CATS, *RANGE, "--via", "api")
    assert status == 0 and again["papers"]["new"] == len(expected_ids(fake, CATS)) - summary["papers"]["new"]
    assert not set(first_run) & set(api_starts(server, mark))
    assert set(stored(cli_env)) == expected_ids(fake, CATS)


def test_an_open_oai_harvest_resumed_the_next_day_goes_on_from_its_token(
        fake: FakeArxiv, server: LocalServer, cli_env: Settings) -> None:
    """Without --to the range ends today, which moves: the windows are found again the next day."""
    settings = load_settings()
    fake.page_size = 8
    today = date.today()

    def stop(report: HarvestReport, n: int) -> None:
        if report.pages == 2:
            request_shutdown()

    with Store(settings.db_path, taxonomy=paths.TAXONOMY) as store, \
            Harvester(settings, store, progress=stop, today=today) as h:
        assert h.run(["cs.LG"], FIRST, None, via="oai").interrupted
    reset_shutdown()
    mark = len(server.requests)
    with Store(settings.db_path) as store, Harvester(settings, store, today=today + timedelta(days=1)) as h:
        report = h.run(["cs.LG"], FIRST, None, via="oai")
    assert not report.interrupted and "resumptionToken" in server.requests[mark][1]
    assert not [q for _, q, _ in server.requests[mark:] if q.get("from") == ["2026-01-01"]]
    assert set(stored(settings)) == {p.id for p, _ in fake.papers if "cs.LG" in p.categories}


def test_an_expired_resumption_token_starts_its_window_over(
        fake: FakeArxiv, server: LocalServer, cli_env: Settings) -> None:
    settings = load_settings()

    def stop(report: HarvestReport, n: int) -> None:
        if report.pages == 1:
            request_shutdown()

    with Store(settings.db_path, taxonomy=paths.TAXONOMY) as store, Harvester(settings, store, progress=stop) as h:
        assert h.run(["cs.LG"], FIRST, LAST, via="oai").interrupted
    reset_shutdown()
    fake.expire_tokens()
    with Store(settings.db_path) as store, Harvester(settings, store) as h:
        report = h.run(["cs.LG"], FIRST, LAST, via="oai")
    assert not report.interrupted and report.inserted == len(expected_ids(fake, ["cs.LG"])) - report.unchanged
    assert set(stored(settings)) == expected_ids(fake, ["cs.LG"])


# -- idempotence ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["api", "oai"])
def test_a_second_run_changes_nothing(route: str, fake: FakeArxiv, server: LocalServer, cli_env: Settings,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert harvest(capsys, *CATS, *RANGE, "--via", route)[0] == 0
    before = stored(cli_env)
    mark = len(server.requests)
    status, summary, _ = harvest(capsys, *CATS, *RANGE, "--via", route)
    assert status == 0 and summary["papers"] == {"new": 0, "updated": 0, "unchanged": 0}
    assert summary["pages"] == 0 and summary["windows_skipped"] > 0 and len(server.requests) == mark
    # asked again page by page (--refresh), every paper is unchanged and the store identical
    status, summary, _ = harvest(capsys, *CATS, *RANGE, "--via", route, "--refresh")
    assert status == 0 and summary["pages"] > 0
    papers = summary["papers"]
    assert isinstance(papers, dict) and papers["new"] == papers["updated"] == 0
    assert papers["unchanged"] >= len(before)  # OAI: a paper in both sets is counted in each
    assert stored(cli_env) == before


# -- announcements: harvested papers are not "today's" ------------------------------------------------------------
def test_harvested_papers_never_become_todays_announcement(
        fake: FakeArxiv, cli_env: Settings, demo_papers: list[Paper], capsys: pytest.CaptureFixture[str]) -> None:
    day = "2026-06-30"
    listed = [p for p in demo_papers if p.announced == day][:30]
    with Store(cli_env.db_path, taxonomy=paths.TAXONOMY) as store:
        store.upsert_papers(listed)
        store.ensure_user(1, name="Ada")
        before = digest_candidates(store, 1, day)
        assert store.latest_announcement() == day and before
    assert harvest(capsys, *CATS, *RANGE, "--via", "api")[0] == 0
    with Store(cli_env.db_path) as store:
        assert store.count_papers() > len(listed)
        assert store.latest_announcement() == day and store.announcement_days() == [day]
        assert digest_candidates(store, 1, day) == before
        relisted = store.get_papers([p.id for p in listed])
        assert {p.announced for p in relisted.values()} == {day}  # a harvest never clears an announcement


# -- route choice and bad input ---------------------------------------------------------------------------------
def test_windows() -> None:
    assert month_windows(date(2025, 12, 20), date(2026, 2, 3)) == [
        (date(2025, 12, 20), date(2025, 12, 31)), (date(2026, 1, 1), date(2026, 1, 31)),
        (date(2026, 2, 1), date(2026, 2, 3))]
    assert oai_windows(date(2024, 3, 5), date(2026, 2, 3)) == [
        (date(2024, 3, 5), date(2024, 12, 31)), (date(2025, 1, 1), date(2025, 12, 31)),
        (date(2026, 1, 1), date(2026, 1, 31)), (date(2026, 2, 1), date(2026, 2, 3))]


def test_route_by_request_size(store: Store) -> None:
    tax = read_taxonomy(paths.TAXONOMY)
    cats = resolve_targets(store, tax, ["cs.LG", "stat.ML"])
    arch = resolve_targets(store, tax, ["astro-ph", "math"])
    assert [t.oai_set for t in cats] == ["cs:cs:LG", "stat:stat:ML"]
    assert [t.oai_set for t in arch] == ["physics:astro-ph", "math:math"]
    assert "astro-ph.GA" in arch[0].codes and "math.AG" in arch[1].codes and "cs.LG" not in arch[1].codes
    assert resolve_targets(store, tax, ["astro-ph.GA"])[0].oai_set == "physics:astro-ph:GA"
    assert choose_route(cats, date(2026, 1, 1), date(2026, 2, 15))[0] == "api"
    assert choose_route(cats, date(2025, 1, 1), date(2026, 1, 1))[0] == "oai"
    assert choose_route(arch, date(2026, 1, 1), date(2026, 1, 7))[0] == "api"
    assert choose_route(arch, date(2026, 1, 1), date(2026, 3, 1))[0] == "oai"
    assert choose_route(arch, date(2026, 1, 1), date(2026, 3, 1), via="api") == ("api", "forced by --via api")


@pytest.mark.parametrize(("args", "message"), [
    (["cs.XX", "--from", "2026-01-01"], "unknown arXiv category 'cs.XX'"),
    (["cs.LG", "--from", "2026-03-01", "--to", "2026-01-01"], "reversed date range"),
    (["cs.LG", "--from", "2026-02-30"], "--from: '2026-02-30' is not a date"),
    (["cs.LG", "--from", "yesterday"], "--from: 'yesterday' is not a date"),
    (["cs.LG", "--from", "1980-01-01"], "before arXiv's first papers"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
        args: list[str], message: str, fake: FakeArxiv, server: LocalServer, cli_env: Settings,
        capsys: pytest.CaptureFixture[str]) -> None:
    status, summary, err = harvest(capsys, *args)
    assert status == 2 and summary == {}
    assert err.strip().splitlines() == [err.strip()] and message in err and err.startswith("arxiv-digest harvest:")
    assert server.requests == []
    with Store(cli_env.db_path) as store:
        assert store.count_papers() == 0 and store.harvest_windows() == []


@pytest.mark.parametrize("route", ["api", "oai"])
def test_unreachable_arxiv_exits_2_with_one_line(route: str, cli_env: Settings, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    dead = LocalServer()
    url = dead.url
    dead.close()  # nothing listens there any more
    monkeypatch.setenv("ARXIV_DIGEST_API_URL", f"{url}/api/query")
    monkeypatch.setenv("ARXIV_DIGEST_OAI_URL", f"{url}/oai")
    monkeypatch.setenv("ARXIV_DIGEST_API_RETRIES", "1")
    status, summary, err = harvest(capsys, "cs.LG", *RANGE, "--via", route)
    assert status == 2 and summary == {}
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "gave up after 2 attempts" in lines[0] and "0 pages stored" in lines[0]
    with Store(cli_env.db_path) as store:
        assert store.count_papers() == 0


# -- schema ---------------------------------------------------------------------------------------------------
def test_a_database_of_the_previous_version_keeps_its_rows(tmp_path: Path, demo_papers: list[Paper]) -> None:
    path = tmp_path / "old.sqlite"
    version = MIGRATIONS.index(next(m for m in MIGRATIONS if "harvest_windows" in m))
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:version])
    conn.close()
    with Store(path, taxonomy=paths.TAXONOMY) as store:  # migrates to the current version
        assert store.harvest_windows() == []
    # a store of the version before, holding papers and a user, migrates and keeps them
    path2 = tmp_path / "old2.sqlite"
    conn = sqlite3.connect(path2, isolation_level=None)
    migrate(conn, MIGRATIONS[:version])
    conn.executemany("INSERT INTO papers (id, title, content_hash) VALUES (?, ?, ?)",
                     [(p.id, p.title, "x") for p in demo_papers[:20]])
    conn.execute("INSERT INTO users (id, name) VALUES (5, 'Ada')")
    conn.close()
    with Store(path2) as store:
        assert store.count_papers() == 20 and store.get_paper(demo_papers[0].id).title == demo_papers[0].title
        w = store.harvest_window("api", "cs.LG", "2026-01-01", "2026-01-31")
        assert dataclasses.astuple(w)[4:] == ("pending", None, None, 0, 0)
