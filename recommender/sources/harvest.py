"""Bulk harvest: fill the store with every paper of some categories or whole archives over a date range.

Two routes, both through the arXiv client's politeness (one budget, backoff, ``request_shutdown``):

- ``api``: the query API by submission date (``cat:cs.LG AND submittedDate:[... TO ...]``, all asked categories
  in one query), in calendar-month windows; a window whose query would page deeper than :data:`API_MAX_DEPTH`
  results is split in halves (recursively) before anything is stored, since the API does not page
  arbitrarily deep.
- ``oai``: OAI-PMH ``ListRecords`` (arXiv metadata format, one set per asked category or archive, see
  :mod:`recommender.sources.oai`), which arXiv asks bulk harvesters to use. OAI-PMH selects by datestamp (the
  day a record last changed), never by submission date, and a record's datestamp is never before its
  submission, so the OAI route asks for datestamps from ``first`` to today (windows of a year, this year's of
  a month) and keeps the records submitted (``created``) from ``first`` to ``last`` in the asked categories.

:func:`choose_route` picks the route by the size of the request (whole archives over more than a month, or
anything over more than :data:`OAI_MIN_DAYS` days, go to OAI-PMH) unless one is forced.

Progress lives in the store (:mod:`recommender.store.harvest`): each page's papers and the window's cursor (the
API's next offset, the OAI resumption token) are committed in one transaction, finished windows are skipped,
so an interrupted harvest continues where it stopped and a second run over the same range changes nothing.
Harvested papers keep ``announced`` NULL (a harvest knows submission days, not announcement days), so they
never become "today's" papers of a digest. Embedding and classifying them is a separate step.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from recommender.config import Settings
from recommender.days import EARLIEST, utc_today
from recommender.models import Paper
from recommender.sources.arxiv import ArxivClient, ArxivError, ArxivShutdown
from recommender.sources.oai import ArxivSickle, ExpiredToken, list_records_page, set_spec
from recommender.store import HarvestWindow, Store
from recommender.store.papers import UpsertStats
from recommender.taxonomy import Taxonomy, read_taxonomy

log = logging.getLogger(__name__)

ROUTES = ("api", "oai")
API_MAX_DEPTH = 10_000  # never page one API query past this many results: split its window instead
API_MAX_PAGE_SIZE = 2000  # the most the API answers in one page
OAI_MIN_DAYS = 92  # a range longer than this is a bulk request: OAI-PMH
ARCHIVE_API_MAX_DAYS = 31  # a whole archive over more days than this: OAI-PMH
# the harvest stores papers only; these give them vectors and predicted categories (--engine ray for many)
FOLLOW_UP = ("arxiv-digest embed", "arxiv-digest classify-store")


class HarvestError(ArxivError):
    """A harvest stopped on an error; what it stored so far stays, and the same command goes on from there."""


@dataclass(frozen=True)
class Target:
    """One thing asked for: a category (``cs.LG``) or a whole archive (``astro-ph``), with the canonical codes it
    covers (for the API query and for filtering OAI records) and its OAI set."""

    code: str
    is_archive: bool
    codes: frozenset[str]
    oai_set: str


@dataclass
class HarvestReport:
    """What a harvest did (this run): papers new/updated/unchanged, pages and windows, route and timing."""

    route: str
    reason: str
    categories: list[str]
    first: str
    last: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    filtered: int = 0  # OAI records outside the asked categories or submission days
    pages: int = 0
    windows: int = 0  # windows finished by this run
    windows_skipped: int = 0  # already finished by an earlier run
    windows_split: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    window: str = ""  # the window being harvested (for progress)
    text_changed: list[str] = field(default_factory=list)

    @property
    def papers(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def add(self, stats: UpsertStats) -> None:
        self.inserted += stats.inserted
        self.updated += stats.updated
        self.unchanged += stats.unchanged
        self.text_changed.extend(stats.text_changed)

    def to_dict(self) -> dict[str, Any]:
        secs = max(self.seconds, 1e-9)
        return {
            "route": self.route, "reason": self.reason, "categories": self.categories, "from": self.first,
            "to": self.last, "papers": {"new": self.inserted, "updated": self.updated, "unchanged": self.unchanged},
            "filtered": self.filtered, "pages": self.pages, "windows": self.windows,
            "windows_skipped": self.windows_skipped, "windows_split": self.windows_split,
            "seconds": round(self.seconds, 3), "pages_per_s": round(self.pages / secs, 2) if self.pages else 0.0,
            "papers_per_s": round(self.papers / secs, 1) if self.papers else 0.0, "interrupted": self.interrupted,
        }


ProgressHook = Callable[[HarvestReport, int], None]  # (report so far, papers of the page just stored)


# -- input -----------------------------------------------------------------------------------------------
def parse_day(text: str, what: str) -> date:
    """A ``YYYY-MM-DD`` day of the command line; ValueError naming the option otherwise."""
    try:
        day = date.fromisoformat(text.strip())
    except (AttributeError, ValueError):
        raise ValueError(f"{what}: {text!r} is not a date (YYYY-MM-DD)") from None
    if len(text.strip()) != 10:
        raise ValueError(f"{what}: {text!r} is not a date (YYYY-MM-DD)")
    return day


def check_range(first: date, last: date | None, today: date | None = None) -> tuple[date, date]:
    """The range to harvest: ``last`` defaults to today and is capped at today; a reversed range or one
    before arXiv existed raises ValueError."""
    today = today or utc_today()
    last = last or today
    if first > last:
        raise ValueError(f"reversed date range: --from {first} is after --to {last}")
    if first < EARLIEST:
        raise ValueError(f"--from {first} is before arXiv's first papers (1991)")
    if first > today:
        raise ValueError(f"--from {first} is in the future")
    if last > today:
        log.info("--to %s is in the future; harvesting up to today, %s", last, today)
        last = today
    return first, last


def resolve_targets(store: Store, taxonomy: Taxonomy, names: Sequence[str]) -> list[Target]:
    """The targets for category and archive names; UnknownCategory (naming close matches) for an unknown one."""
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ValueError("name at least one category or archive, e.g. cs.LG or astro-ph")
    by_code = {c.code: c for c in taxonomy.categories}
    out: dict[str, Target] = {}
    for name in names:
        if store.is_archive(name):
            members = [c for c in taxonomy.categories if c.archive == name]
            codes = frozenset({c.canonical for c in members} | {name})
            group = next((c.group for c in members if c.group), None)
            out.setdefault(name, Target(name, True, codes, set_spec(name, name, group)))
            continue
        code = store.canonical_category(name)  # raises UnknownCategory
        cat = by_code.get(code)
        archive = cat.archive if cat else None
        group = cat.group if cat else None
        out.setdefault(code, Target(code, False, frozenset({code}), set_spec(code, archive, group)))
    return list(out.values())


def choose_route(targets: Sequence[Target], first: date, last: date, via: str | None = None) -> tuple[str, str]:
    """(route, why): ``via`` when given, else OAI-PMH for bulk requests and the query API for small ones."""
    days = (last - first).days + 1
    if via:
        if via not in ROUTES:
            raise ValueError(f"--via must be one of {', '.join(ROUTES)}, not {via!r}")
        return via, f"forced by --via {via}"
    archives = [t.code for t in targets if t.is_archive]
    if archives and days > ARCHIVE_API_MAX_DAYS:
        return "oai", (f"whole archive{'s' if len(archives) > 1 else ''} {' '.join(archives)} over {days} days: "
                       f"a bulk request, and arXiv asks bulk harvesters to use OAI-PMH")
    if days > OAI_MIN_DAYS:
        return "oai", f"{days} days (more than {OAI_MIN_DAYS}): a bulk request, and arXiv asks for OAI-PMH"
    what = f"{len(targets)} categor{'y' if len(targets) == 1 else 'ies'}" if not archives else "archives"
    return "api", f"{what} over {days} days: small enough for the query API"


# -- windows ---------------------------------------------------------------------------------------------
def month_windows(first: date, last: date) -> list[tuple[date, date]]:
    """``first``..``last`` cut at calendar months."""
    out: list[tuple[date, date]] = []
    start = first
    while start <= last:
        next_month = date(start.year + start.month // 12, start.month % 12 + 1, 1)
        end = min(last, next_month - timedelta(days=1))
        out.append((start, end))
        start = end + timedelta(days=1)
    return out


def oai_windows(first: date, today: date) -> list[tuple[date, date]]:
    """Datestamp windows for OAI-PMH: whole years before this one (few requests for the thin early years; a
    year of the largest set is ~150 pages, what an expired resumption token costs at most), then this year's
    months (their keys stay the same as days pass, but for the running month)."""
    this_year = date(today.year, 1, 1)
    out = [(max(first, date(y, 1, 1)), date(y, 12, 31)) for y in range(first.year, today.year)]
    return out + month_windows(max(first, this_year), today)


def halves(first: date, last: date) -> list[tuple[date, date]]:
    mid = first + timedelta(days=(last - first).days // 2)
    return [(first, mid), (mid + timedelta(days=1), last)]


def api_query(targets: Sequence[Target]) -> str:
    codes = sorted({c for t in targets for c in t.codes})
    terms = [f"cat:{c}" for c in codes]
    return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"


# -- the harvest -----------------------------------------------------------------------------------------
class Harvester:
    """Runs one harvest over a store; see the module docstring. ``refresh`` harvests finished windows again
    (their papers are then counted unchanged unless arXiv changed them)."""

    def __init__(self, settings: Settings, store: Store, client: ArxivClient | None = None,
                 page_size: int | None = None, progress: ProgressHook | None = None, refresh: bool = False,
                 today: date | None = None) -> None:
        self.settings = settings
        self.store = store
        self._own_client = client is None
        self.client = client or ArxivClient(settings)
        self.page_size = max(1, min(page_size or settings.api_page_size, API_MAX_PAGE_SIZE))
        self.progress = progress
        self.refresh = refresh
        self.today = today or utc_today()
        self.taxonomy = read_taxonomy(settings.taxonomy_path)
        self._aliases = self.taxonomy.aliases

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def __enter__(self) -> Harvester:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def plan(self, names: Sequence[str], first: date, last: date | None,
             via: str | None = None) -> tuple[list[Target], date, date, str, str]:
        """Check the input (raising ValueError/UnknownCategory before any request) and choose the route."""
        first, last = check_range(first, last, self.today)
        targets = resolve_targets(self.store, self.taxonomy, names)
        route, reason = choose_route(targets, first, last, via)
        return targets, first, last, route, reason

    def run(self, names: Sequence[str], first: date, last: date | None = None,
            via: str | None = None) -> HarvestReport:
        """Harvest ``names`` (categories or archives) submitted ``first``..``last``; returns the report.
        A stop request (:func:`request_shutdown`) or Ctrl-C ends it early with ``interrupted`` set; an arXiv
        error raises :class:`HarvestError` after what was stored so far is committed."""
        targets, first, last, route, reason = self.plan(names, first, last, via)
        report = HarvestReport(route, reason, [t.code for t in targets], first.isoformat(), last.isoformat())
        log.info("harvest %s %s..%s via %s: %s", " ".join(report.categories), first, last, route, reason)
        started = time.perf_counter()
        try:
            if route == "api":
                self._run_api(targets, first, last, report)
            else:
                self._run_oai(targets, first, last, report)
        except (ArxivShutdown, KeyboardInterrupt):
            report.interrupted = True
            log.warning("harvest interrupted after %d pages this run; run the same command to go on", report.pages)
        except ArxivError as exc:
            raise HarvestError(f"{exc} ({report.pages} pages stored by this run; the same command goes on "
                               f"from there)") from exc
        finally:
            report.seconds = time.perf_counter() - started
        return report

    # -- common --------------------------------------------------------------------------------------
    def _open(self, route: str, query: str, first: date, last: date, report: HarvestReport) -> HarvestWindow | None:
        """The window to work on, or None when an earlier run finished it (or it is split: handled by caller)."""
        window = self.store.harvest_window(route, query, first.isoformat(), last.isoformat())
        if window.done and self.refresh:
            window = self.store.set_harvest_window(window, "pending", cursor=None)
        if window.done:
            report.windows_skipped += 1
            return None
        report.window = f"{query} {first}..{last}"
        return window

    def _store_page(self, window: HarvestWindow, papers: list[Paper], cursor: str | None, total: int | None,
                    done: bool, report: HarvestReport) -> HarvestWindow:
        window, stats = self.store.record_harvest_page(window, papers, cursor, total, done)
        report.pages += 1
        report.add(stats)
        if done:
            report.windows += 1
        if self.progress:
            self.progress(report, len(papers))
        return window

    # -- API -----------------------------------------------------------------------------------------
    def _run_api(self, targets: Sequence[Target], first: date, last: date, report: HarvestReport) -> None:
        key = " ".join(t.code for t in sorted(targets, key=lambda t: t.code))
        query = api_query(targets)
        for w_first, w_last in month_windows(first, last):
            self._api_window(key, query, w_first, w_last, report)

    def _api_window(self, key: str, query: str, first: date, last: date, report: HarvestReport) -> None:
        window = self._open("api", key, first, last, report)
        if window is None:
            return
        if window.status == "split":
            for a, b in halves(first, last):
                self._api_window(key, query, a, b, report)
            return
        search = f"{query} AND submittedDate:[{first:%Y%m%d}0000 TO {last:%Y%m%d}2359]"
        start = int(window.cursor or 0)
        for offset, papers, total in self.client.api_pages(search, start, self.page_size, API_MAX_DEPTH):
            if total is not None and total > API_MAX_DEPTH and first < last and offset == 0:
                log.info("%s %s..%s: %d results, deeper than %d: splitting the window", key, first, last, total,
                         API_MAX_DEPTH)
                self.store.set_harvest_window(window, "split", total=total)
                report.pages += 1
                report.windows_split += 1
                for a, b in halves(first, last):
                    self._api_window(key, query, a, b, report)
                return
            end = offset + len(papers)
            reach = min(total, API_MAX_DEPTH) if total is not None else None
            done = not papers or (reach is not None and end >= reach)
            if done and total is not None and total > API_MAX_DEPTH:
                log.warning("%s on %s: %d results, only the first %d can be paged", key, first, total, API_MAX_DEPTH)
            harvested = [replace(p, source="harvest-api", announced=None, announce_type=None) for p in papers]
            window = self._store_page(window, harvested, str(end), total, done, report)
            if done:
                return
        if not window.done:  # the pages ended without reaching the total (the API stopped counting)
            self.store.set_harvest_window(window, "done")
            report.windows += 1

    # -- OAI-PMH -------------------------------------------------------------------------------------
    def _run_oai(self, targets: Sequence[Target], first: date, last: date, report: HarvestReport) -> None:
        sickle = ArxivSickle(self.client)
        # datestamps run from the first submission day to today: a record changes only after it is submitted
        windows = oai_windows(first, self.today)
        for target in targets:
            for w_first, w_last in windows:
                self._oai_window(sickle, target, first, last, w_first, w_last, report)

    def _wanted(self, paper: Paper, target: Target, first: date, last: date) -> bool:
        if not any(self._aliases.get(c, c) in target.codes for c in paper.categories):
            return False
        created = (paper.published or "")[:10]
        return first.isoformat() <= created <= last.isoformat()

    def _oai_window(self, sickle: ArxivSickle, target: Target, first: date, last: date, w_first: date,
                    w_last: date, report: HarvestReport) -> None:
        # the window's key holds the kept submission range (another range keeps other records); an open range
        # (up to today) is keyed by its start only, so a harvest resumed on a later day finds its windows again:
        # what a finished window kept then is all it holds, as a record is never changed before it is submitted
        query = f"{target.oai_set} submitted from {first}" + (f" to {last}" if last < self.today else "")
        window = self._open("oai", query, w_first, w_last, report)
        if window is None:
            return
        token = window.cursor
        restarted = False
        while True:
            try:
                page = list_records_page(sickle, target.oai_set, w_first, w_last, token)
            except ExpiredToken:
                if restarted or not token:
                    raise
                log.warning("%s: the stored resumption token expired; starting the window %s..%s over",
                            target.oai_set, w_first, w_last)
                window = self.store.set_harvest_window(window, "pending", cursor=None)
                token, restarted = None, True
                continue
            kept = [p for p in page.papers if self._wanted(p, target, first, last)]
            report.filtered += len(page.papers) - len(kept)
            done = page.token is None
            window = self._store_page(window, kept, page.token, page.complete_size, done, report)
            if done:
                return
            token = page.token

