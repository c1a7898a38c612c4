"""All arXiv I/O: the daily RSS feed, the query API (id lookup and date-range harvesting), with politeness.

Every base URL is a setting (``rss_url``, ``api_url``) so tests point them at local servers. Requests go
through :class:`ArxivClient`, which keeps at most one API request every ``api_delay`` seconds, retries 429,
5xx and timeouts with exponential backoff (honouring ``Retry-After``), and gives up on a run of empty pages
after a bounded patience (arXiv sometimes answers an empty page while throttling). Responses are parsed
with feedparser into :class:`~recommender.models.Paper` objects; anything that is not a feed (an HTML error
page, malformed XML, an API error entry) raises :class:`ArxivError` with a clear message.
"""
from __future__ import annotations

import email.utils
import logging
import re
import threading
import time
from datetime import date, datetime, timezone
from typing import Callable, Iterator, Sequence

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
    return datetime(*struct[:6], tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date().isoformat()
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
    """HTTP client for arXiv's RSS and query API, polite and patient."""

    def __init__(self, settings: Settings, sleep: Callable[[float], None] = time.sleep,
                 http: httpx.Client | None = None) -> None:
        self.settings = settings
        self._sleep = sleep
        self._http = http or httpx.Client(timeout=settings.api_timeout, follow_redirects=True,
                                          headers={"User-Agent": USER_AGENT})
        self._lock = threading.Lock()
        self._last_request = 0.0

    def close(self) -> None:
        self._http.close()

    def _get(self, url: str, params: dict[str, str | int] | None = None, polite: bool = True) -> bytes:
        """GET with pacing and retries; returns the body of a 200 answer."""
        attempts = max(1, self.settings.api_retries + 1)
        delay = max(self.settings.api_delay, 0.5) if self.settings.api_delay > 0 else 0.0
        for attempt in range(attempts):
            with self._lock:
                if polite:
                    wait = self._last_request + self.settings.api_delay - time.monotonic()
                    if wait > 0:
                        self._sleep(wait)
                self._last_request = time.monotonic()
            problem: str
            retry_after: float | None = None
            try:
                resp = self._http.get(url, params=params)
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
            if attempt == attempts - 1:
                raise ArxivError(f"{url} {problem}; gave up after {attempts} attempts")
            backoff = max(retry_after or 0.0, delay * (2 ** attempt))
            log.warning("%s %s; retrying in %.1fs (attempt %d/%d)", url, problem, backoff, attempt + 1, attempts)
            self._sleep(backoff)
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
        size = page_size or self.settings.api_page_size
        query = (f"cat:{category} AND submittedDate:[{start:%Y%m%d}0000 TO {end:%Y%m%d}2359]")
        offset, total, empty_runs = 0, None, 0
        while total is None or offset < total:
            params = {"search_query": query, "start": offset, "max_results": size,
                      "sortBy": "submittedDate", "sortOrder": "ascending"}
            papers, page_total = parse_api(self._get(self.settings.api_url, params),
                                           source=f"{self.settings.api_url} {category} @{offset}")
            if page_total is not None:
                total = page_total
            if not papers:
                if total is not None and offset >= total:
                    break
                empty_runs += 1
                if empty_runs > self.settings.api_empty_page_retries:
                    log.warning("harvest %s: %d empty pages in a row at offset %d of %s; stopping",
                                category, empty_runs, offset, total)
                    raise ArxivError(
                        f"arXiv kept answering empty pages for {category} at offset {offset} of {total} "
                        f"({empty_runs} tries); try again later")
                self._sleep(self.settings.api_delay * (2 ** empty_runs))
                continue
            empty_runs = 0
            yield from papers
            offset += len(papers)
            if total is None:
                break
