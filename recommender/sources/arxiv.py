"""All arXiv I/O: the daily RSS feed, the query API (id lookup and date-range harvesting), with politeness.

Every base URL is a setting (``rss_url``, ``api_url``) so tests point them at local servers. Requests go
through :class:`ArxivClient`, which keeps at most one API request every ``api_delay`` seconds, retries 429,
5xx and timeouts with exponential backoff (honouring ``Retry-After``), and gives up on a run of empty pages
after a bounded patience (arXiv sometimes answers an empty page while throttling). Responses are parsed
with feedparser into :class:`~recommender.models.Paper` objects; anything that is not a feed (an HTML error
page, malformed XML, an API error entry) raises :class:`ArxivError` with a clear message.

Politeness is one budget for the whole machine, not per client (see :mod:`recommender.engine.concurrency`):
every API request of every client in the process reserves the next slot from one limiter per API host, and
from ``<home>/arxiv_budget`` (the latest reserved slot, updated under ``fcntl.flock``) shared with every other
process on the same state directory; a slot is ``api_delay`` seconds after the previous one. ``Retry-After``
pushes the shared slot out as well. Every wait and request is interruptible: :func:`request_shutdown` (the
bot calls it on SIGTERM/SIGINT) or :meth:`ArxivClient.close` makes waiting and later calls raise
:class:`ArxivShutdown` at once.
"""
from __future__ import annotations

import email.utils
import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import httpx

from recommender.config import Settings
from recommender.ids import InvalidArxivId, parse_arxiv_id
from recommender.models import ANNOUNCE_TYPES, FeedResult, Paper

log = logging.getLogger(__name__)

USER_AGENT = "arxiv-digest/0.1 (personal arXiv recommender)"
RETRY_STATUS = {429, 500, 502, 503, 504}
ABSTRACT_PREFIX = re.compile(
    r"^\s*arXiv:(?P<id>\S+?)\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?", re.DOTALL
)


class ArxivError(RuntimeError):
    """arXiv could not be reached or answered something that is not a usable feed."""


class ArxivShutdown(ArxivError):
    """The process is shutting down (:func:`request_shutdown`) or the client was closed: nothing more is sent."""


_SHUTDOWN = threading.Event()
_POLL = 0.1  # seconds between checks of the stop events while waiting for a slot, a backoff or an answer
MAX_WAIT = 600.0  # never wait longer than this for a slot (guards against a clock set back, a wild Retry-After)


def request_shutdown() -> None:
    """Stop all arXiv traffic of this process: every client's waits and requests raise :class:`ArxivShutdown`
    within ~0.1 s, and so does every later call."""
    _SHUTDOWN.set()


def reset_shutdown() -> None:
    """Allow arXiv traffic again after :func:`request_shutdown` (tests; a process that serves again)."""
    _SHUTDOWN.clear()


def shutting_down() -> bool:
    return _SHUTDOWN.is_set()


class Budget:
    """The politeness budget of one API host: one per process (:func:`budget_for`), shared by all clients,
    and, through ``path``, with other processes on the same state directory.

    :meth:`reserve` hands out slots (wall-clock times) at least ``delay`` seconds apart: the next one is
    ``max(now, latest slot + delay)``, the latest slot being the later of this process's and the file's. The
    caller waits until its slot. :meth:`defer` moves the next slot to no earlier than a given time (a
    ``Retry-After``)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._lock = threading.Lock()
        self._latest = 0.0  # the latest slot handed out in this process (time.time())

    def reserve(self, delay: float, path: Path | None) -> float:
        with self._lock:
            now = time.time()
            latest = max(self._latest, self._file_latest(path, now)) if path else self._latest
            slot = min(max(now, latest + delay), now + max(delay, MAX_WAIT))
            self._latest = slot
            if path:
                self._file_update(path, slot)
            return slot

    def sent(self, path: Path | None) -> None:
        """A request goes out now: the next slot counts from now if now is later than the reserved slot (a
        send delayed by a busy machine must not bring the next request closer)."""
        now = time.time()
        with self._lock:
            self._latest = max(self._latest, now)
            if path:
                self._file_update(path, now)

    def defer(self, until: float, delay: float, path: Path | None) -> None:
        """The next slot is no earlier than ``until`` (wall clock)."""
        latest = min(until, time.time() + MAX_WAIT) - delay
        with self._lock:
            self._latest = max(self._latest, latest)
            if path:
                self._file_update(path, latest)

    @staticmethod
    def _locked(path: Path) -> int | None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            log.warning("arXiv budget file %s unusable (%s); pacing this process only", path, exc)
            return None
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def _file_latest(self, path: Path, now: float) -> float:
        fd = self._locked(path)
        if fd is None:
            return 0.0
        try:
            raw = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            value = float(raw) if raw else 0.0
        except ValueError:
            value = 0.0
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return value if value < now + MAX_WAIT else 0.0  # a value far in the future is garbage: ignore it

    def _file_update(self, path: Path, slot: float) -> None:
        """Raise the file's latest slot to ``slot`` (read-compare-write under the lock; never lowered)."""
        fd = self._locked(path)
        if fd is None:
            return
        try:
            raw = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            try:
                current = float(raw) if raw else 0.0
            except ValueError:
                current = 0.0
            if slot > current or current > time.time() + MAX_WAIT:
                data = f"{slot:.6f}\n".encode("ascii")
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


_BUDGETS: dict[str, Budget] = {}
_BUDGETS_LOCK = threading.Lock()


def budget_for(url: str) -> Budget:
    """The one budget of this process for the host of ``url``."""
    host = urlsplit(url).netloc.lower()
    with _BUDGETS_LOCK:
        if host not in _BUDGETS:
            _BUDGETS[host] = Budget(host)
        return _BUDGETS[host]


def clean_title(text: str) -> str:
    return " ".join((text or "").split())


def clean_abstract(text: str) -> str:
    return (text or "").strip()


def split_authors(text: str | Sequence[str] | None) -> list[str]:
    """Authors from a list or from arXiv's display string ``"A, B and C"``."""
    if text is None:
        return []
    if not isinstance(text, str):
        return [clean_title(a) for a in text if a and clean_title(a)]
    text = clean_title(text)
    if not text:
        return []
    parts = re.split(r",\s*(?:and\s+)?|\s+and\s+", text)
    return [p.strip() for p in parts if p.strip()]


def _iso(struct: time.struct_time | None) -> str | None:
    if struct is None:
        return None
    return datetime(*struct[:6], tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_feed(parsed: feedparser.FeedParserDict, what: str, kind: str) -> None:
    version = parsed.get("version", "")
    if kind == "rss" and not version.startswith("rss"):
        if parsed.get("bozo"):
            raise ArxivError(f"{what}: not a valid RSS feed ({parsed.get('bozo_exception')})")
        raise ArxivError(f"{what}: expected an RSS feed, got {version or 'something else (an HTML page?)'}")
    if kind == "atom" and not version.startswith("atom"):
        if parsed.get("bozo"):
            raise ArxivError(f"{what}: not a valid Atom feed ({parsed.get('bozo_exception')})")
        raise ArxivError(f"{what}: expected an Atom feed, got {version or 'something else (an HTML page?)'}")
    if parsed.get("bozo") and not parsed.get("entries") and not parsed.get("feed"):
        raise ArxivError(f"{what}: malformed feed ({parsed.get('bozo_exception')})")
    exc = parsed.get("bozo_exception")
    if parsed.get("bozo") and exc is not None and "CharacterEncoding" not in type(exc).__name__:
        # feedparser recovers from some errors; a truncated/malformed document must not be half-used
        raise ArxivError(f"{what}: malformed feed ({exc})")


# -- RSS --------------------------------------------------------------------------------------------------
def parse_rss(content: bytes | str, source: str = "rss") -> FeedResult:
    """Parse one arXiv RSS 2.0 listing. An empty channel means no announcement (``announced`` None)."""
    parsed = feedparser.parse(content)
    _check_feed(parsed, source, "rss")
    entries = parsed.get("entries", [])
    if not entries:
        return FeedResult(announced=None, papers=[])
    announced = _listing_day(parsed.feed.get("published") or parsed.feed.get("updated")
                             or entries[0].get("published"))
    papers: list[Paper] = []
    for e in entries:
        desc = e.get("summary", "") or e.get("description", "")
        m = ABSTRACT_PREFIX.match(desc)
        raw_id = m["id"] if m else (e.get("id") or e.get("link") or "").replace("oai:arXiv.org:", "")
        announce_type = (e.get("arxiv_announce_type") or (m["type"] if m else "new")).strip().lower()
        if announce_type not in ANNOUNCE_TYPES:
            log.warning("%s: unknown announce type %r for %s, treated as new", source, announce_type, raw_id)
            announce_type = "new"
        try:
            parsed_id = parse_arxiv_id(raw_id)
        except InvalidArxivId:
            log.warning("%s: skipping item with unparseable id %r", source, raw_id)
            continue
        abstract = desc[m.end():] if m else desc
        cats = [t.get("term") for t in e.get("tags", []) if t.get("term")]
        papers.append(Paper(
            id=parsed_id.id, version=parsed_id.version or 1, title=clean_title(e.get("title", "")),
            abstract=clean_abstract(abstract), authors=split_authors(e.get("author", "")),
            categories=list(dict.fromkeys(cats)), announced=announced, announce_type=announce_type,
            source="rss",
        ))
    return FeedResult(announced=announced, papers=papers)


def _listing_day(value: str | None) -> str | None:
    """The listing date as YYYY-MM-DD in the feed's own timezone (US Eastern for arXiv)."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).date().isoformat()
    except (TypeError, ValueError):
        try:
            return datetime.fromisoformat(value).date().isoformat()
        except ValueError:
            return None


# -- API (Atom) -------------------------------------------------------------------------------------------
def parse_api(content: bytes | str, source: str = "api") -> tuple[list[Paper], int | None]:
    """Parse an API answer into (papers, totalResults). An API error entry raises ArxivError."""
    parsed = feedparser.parse(content)
    _check_feed(parsed, source, "atom")
    total_raw = parsed.feed.get("opensearch_totalresults")
    total = int(total_raw) if total_raw not in (None, "") else None
    papers: list[Paper] = []
    for e in parsed.get("entries", []):
        entry_id = e.get("id", "")
        if "/api/errors" in entry_id or e.get("title") == "Error":
            raise ArxivError(f"arXiv API error: {clean_title(e.get('summary', 'unknown error'))}")
        try:
            pid = parse_arxiv_id(entry_id)
        except InvalidArxivId:
            log.warning("%s: skipping entry with id %r", source, entry_id)
            continue
        cats = [t.get("term") for t in e.get("tags", []) if t.get("term")]
        primary = (e.get("arxiv_primary_category") or {}).get("term")
        if primary:
            cats = [primary] + [c for c in cats if c != primary]
        authors = [a.get("name", "") for a in e.get("authors", []) if a.get("name")]
        papers.append(Paper(
            id=pid.id, version=pid.version or 1, title=clean_title(e.get("title", "")),
            abstract=clean_abstract(e.get("summary", "")), authors=[clean_title(a) for a in authors],
            categories=list(dict.fromkeys(cats)), comment=e.get("arxiv_comment"),
            journal_ref=e.get("arxiv_journal_ref"), doi=e.get("arxiv_doi"),
            published=_iso(e.get("published_parsed")), updated=_iso(e.get("updated_parsed")), source="api",
        ))
    return papers, total


class ArxivClient:
    """HTTP client for arXiv's RSS and query API, polite and patient; safe to share between threads.

    ``timeout`` and ``retries`` may lower the settings for interactive look-ups (:meth:`interactive`); the
    delay between requests is always the setting's ``api_delay``, shared with every other client (the
    budget). ``sleep`` replaces waiting (tests); it is still interrupted by shutdown before and after."""

    def __init__(self, settings: Settings, sleep: Callable[[float], None] | None = None,
                 http: httpx.Client | None = None, timeout: float | None = None,
                 retries: int | None = None) -> None:
        self.settings = settings
        self.timeout = min(settings.api_timeout, timeout) if timeout is not None else settings.api_timeout
        self.retries = min(settings.api_retries, retries) if retries is not None else settings.api_retries
        self._sleep = sleep
        self._closed = threading.Event()
        self._http = http or httpx.Client(timeout=self.timeout, follow_redirects=True,
                                          headers={"User-Agent": USER_AGENT})
        self._budget = budget_for(settings.api_url)
        self._budget_file: Path | None = Path(settings.home) / "arxiv_budget"

    @classmethod
    def interactive(cls, settings: Settings) -> ArxivClient:
        """A client for look-ups a user waits for: fails faster (at most 2 retries, 15 s timeout), same delay."""
        return cls(settings, timeout=min(settings.api_timeout, 15.0), retries=min(settings.api_retries, 2))

    def close(self) -> None:
        """Close the connections; a wait or request of this client in another thread raises ArxivShutdown."""
        self._closed.set()
        self._http.close()

    # -- waiting and requests, interruptible ----------------------------------------------------------------
    def _check_stop(self) -> None:
        if _SHUTDOWN.is_set():
            raise ArxivShutdown("arXiv requests stopped: the process is shutting down")
        if self._closed.is_set():
            raise ArxivShutdown("arXiv requests stopped: the client was closed")

    def _wait(self, seconds: float) -> None:
        self._check_stop()
        if seconds <= 0:
            return
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                if _SHUTDOWN.wait(min(left, _POLL)):
                    break
                if self._closed.is_set():
                    break
        self._check_stop()

    def _request(self, url: str, params: dict[str, str | int] | None, polite: bool) -> httpx.Response:
        """One GET on a daemon thread, so a stop request need not wait for a silent server (the abandoned
        request ends at its own timeout)."""
        self._check_stop()
        box: dict[str, object] = {}
        done = threading.Event()

        def run() -> None:
            try:
                if polite:
                    self._budget.sent(self._budget_file)
                box["response"] = self._http.get(url, params=params, timeout=self.timeout)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=run, name="arxiv-request", daemon=True).start()
        while not done.wait(_POLL):
            self._check_stop()
        self._check_stop()
        error = box.get("error")
        if isinstance(error, BaseException):
            raise error
        response = box["response"]
        assert isinstance(response, httpx.Response)
        return response

    def _get(self, url: str, params: dict[str, str | int] | None = None, polite: bool = True) -> bytes:
        """GET with pacing (the shared budget) and retries; returns the body of a 200 answer."""
        attempts = max(1, self.retries + 1)
        api_delay = max(self.settings.api_delay, 0.0)
        delay = max(api_delay, 0.5) if api_delay > 0 else 0.0
        budget_file = self._budget_file
        for attempt in range(attempts):
            self._check_stop()
            if polite:
                slot = self._budget.reserve(api_delay, budget_file)
                self._wait(slot - time.time())
            problem: str
            retry_after: float | None = None
            try:
                resp = self._request(url, params, polite)
            except httpx.TimeoutException:
                problem = "timed out"
            except httpx.HTTPError as exc:
                problem = f"failed ({type(exc).__name__}: {exc})"
            else:
                if resp.status_code == 200:
                    return resp.content
                if resp.status_code not in RETRY_STATUS:
                    raise ArxivError(f"{url} answered HTTP {resp.status_code}: {resp.text[:200].strip()}")
                problem = f"answered HTTP {resp.status_code}"
                try:
                    retry_after = float(resp.headers.get("Retry-After", ""))
                except ValueError:
                    retry_after = None
            if polite and retry_after:
                self._budget.defer(time.time() + retry_after, api_delay, budget_file)
            if attempt == attempts - 1:
                raise ArxivError(f"{url} {problem}; gave up after {attempts} attempts")
            backoff = max(retry_after or 0.0, delay * (2 ** attempt))
            log.warning("%s %s; retrying in %.1fs (attempt %d/%d)", url, problem, backoff, attempt + 1, attempts)
            self._wait(backoff)
        raise AssertionError("unreachable")

    # -- RSS ----------------------------------------------------------------------------------------------
    def rss_url(self, categories: Sequence[str]) -> str:
        if not categories:
            raise ValueError("at least one category is needed for the RSS feed")
        return f"{self.settings.rss_url.rstrip('/')}/{'+'.join(categories)}"

    def fetch_rss(self, categories: Sequence[str]) -> FeedResult:
        """Today's listing for ``categories`` (one request for all of them)."""
        url = self.rss_url(categories)
        return parse_rss(self._get(url, polite=False), source=url)

    # -- API ----------------------------------------------------------------------------------------------
    def fetch_by_ids(self, ids: Sequence[str], chunk: int = 100) -> list[Paper]:
        """Look papers up by id (versions and URLs accepted); ids arXiv does not know are simply absent."""
        norm = [parse_arxiv_id(i).id for i in ids]
        out: list[Paper] = []
        for i in range(0, len(norm), chunk):
            part = norm[i:i + chunk]
            body = self._get(self.settings.api_url, {"id_list": ",".join(part), "start": 0,
                                                     "max_results": len(part)})
            papers, _ = parse_api(body, source=f"{self.settings.api_url} id_list")
            out.extend(papers)
        return out

    def harvest(self, category: str, start: date, end: date, page_size: int | None = None) -> Iterator[Paper]:
        """Every paper submitted to ``category`` between ``start`` and ``end`` (inclusive), page by page."""
        query = f"cat:{category} AND submittedDate:[{start:%Y%m%d}0000 TO {end:%Y%m%d}2359]"
        for _offset, papers, _total in self.api_pages(query, page_size=page_size, label=category):
            yield from papers

    # -- bulk harvest (recommender.sources.harvest) ----------------------------------------------------------
    def api_pages(self, search_query: str, start: int = 0, page_size: int | None = None,
                  max_depth: int | None = None, label: str = "") -> Iterator[tuple[int, list[Paper], int | None]]:
        """The pages of one API query sorted by submission date, from offset ``start``: ``(offset, papers,
        total)`` per page, where ``offset`` is the page's start. Stops at the end, or before a page would go
        past ``max_depth`` results (the API does not page arbitrarily deep; the caller splits such queries).
        An empty page before the end is asked again, with bounded patience (``api_empty_page_retries``).
        ``label`` (e.g. the category) names the query in errors."""
        size = page_size or self.settings.api_page_size
        offset, total, empty_runs = start, None, 0
        while total is None or offset < total:
            if max_depth is not None and offset >= max_depth:
                return
            want = size if max_depth is None else max(1, min(size, max_depth - offset))
            params: dict[str, str | int] = {"search_query": search_query, "start": offset, "max_results": want,
                                            "sortBy": "submittedDate", "sortOrder": "ascending"}
            papers, page_total = parse_api(self._get(self.settings.api_url, params),
                                           source=f"{self.settings.api_url} {label} @{offset}" if label
                                           else f"{self.settings.api_url} @{offset}")
            if page_total is not None:
                total = page_total
            if not papers:
                if total is not None and offset >= total:
                    yield offset, [], total
                    return
                empty_runs += 1
                if empty_runs > self.settings.api_empty_page_retries:
                    raise ArxivError(f"arXiv kept answering empty pages{' for ' + label if label else ''} "
                                     f"at offset {offset} of {total} "
                                     f"({empty_runs} tries); try again later")
                log.warning("empty API page at offset %d of %s; asking again (%d/%d)", offset, total,
                            empty_runs, self.settings.api_empty_page_retries)
                self._wait(self.settings.api_delay * (2 ** empty_runs))
                continue
            empty_runs = 0
            yield offset, papers, total
            offset += len(papers)
            if total is None:
                return

    def fetch_oai(self, params: dict[str, str]) -> bytes:
        """One OAI-PMH request to the ``oai_url`` setting (the body of its 200 answer), through the same
        politeness as the API: a slot of the process's and the state directory's arXiv budget, retries with
        backoff on 429/5xx/timeouts honouring ``Retry-After`` (arXiv's OAI flow control is 503 + Retry-After),
        and :func:`request_shutdown`. OAI-PMH errors (``noRecordsMatch``...) come in the 200 body."""
        query: dict[str, str | int] = {k: v for k, v in params.items()}
        return self._get(self.settings.oai_url, query)
