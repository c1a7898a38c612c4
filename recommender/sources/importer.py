"""Bulk import of papers from files: arXiv's metadata snapshot (Kaggle format) and our own corpus JSONL.

Files are streamed line by line through :mod:`recommender.sources.corpus` (gzip or plain, detected from the
magic bytes), so memory stays flat in the file size; the 4.5 GB snapshot is never loaded whole. The format is
detected per record (a snapshot record has ``categories`` as a space-separated string and ``versions``).
Every field of both formats is checked before a record becomes a :class:`Paper`: its JSON type, a sane
length, category codes, versions between 1 and 999, and dates (announcement days ``YYYY-MM-DD`` between 1991
and tomorrow UTC, ISO or RFC 2822 timestamps in that range). A line of bad JSON or a record with any bad field
is skipped and counted (per field, with a few examples naming the line and the problem), so one bad record
never aborts an import. A truncated gzip or unreadable file aborts the import and rolls back everything it
wrote (the import is one transaction of batched writes), so a failed import leaves the store as it was.
"""
from __future__ import annotations

import email.utils
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from recommender.days import BadDay, announcement_day, timestamp
from recommender.ids import InvalidArxivId, parse_arxiv_id
from recommender.models import ImportReport, Paper
from recommender.sources.arxiv import clean_abstract, clean_title, split_authors
from recommender.sources.corpus import CorpusFileError, iter_records
from recommender.store import Store

log = logging.getLogger(__name__)

ImportFileError = CorpusFileError  # the file cannot be read to the end (missing, truncated, not text)

# generous bounds: the longest real title in the shared corpus has 239 characters, abstract 3,488, comment
# 2,624, an author list 35,720 (a collaboration written as one string)
LIMITS = {"title": 2_000, "abstract": 50_000, "comment": 10_000, "journal_ref": 2_000, "doi": 500,
          "authors": 500_000, "author": 2_000}
MAX_CATEGORIES = 50
MAX_VERSION = 999
CATEGORY = re.compile(r"[a-z][a-z-]{0,19}(?:\.[A-Za-z][A-Za-z-]{0,19})?")


class BadRecord(ValueError):
    """A record that cannot become a paper; ``field`` names the culprit (for the import report)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    names: dict[type, str] = {dict: "an object", list: "a list", str: "text"}
    return names.get(type(value), type(value).__name__)


def _str(field: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise BadRecord(field, f"expected text, got {_kind(value)}")
    if len(value) > limit:
        raise BadRecord(field, f"{len(value):,} characters (at most {limit:,})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRecord(field, "text with broken Unicode (a lone surrogate)") from None
    return value


def _opt_str(rec: dict[str, Any], key: str, field: str | None = None) -> str | None:
    field = field or key
    value = rec.get(key)
    return None if value is None else _str(field, value, LIMITS.get(field, 10_000))


def _date(rec: dict[str, Any], key: str, check: Callable[[object], str]) -> str | None:
    value = rec.get(key)
    if value is None or value == "":
        return None
    try:
        return check(value)
    except BadDay as exc:
        raise BadRecord(key, str(exc)) from None


def _id(rec: dict[str, Any]) -> str:
    value = rec.get("id")
    if value is None or value == "":
        raise BadRecord("id", "missing")
    try:
        return parse_arxiv_id(_str("id", value, 100)).id
    except InvalidArxivId as exc:
        raise BadRecord("id", str(exc)) from None


def _title(rec: dict[str, Any]) -> str:
    value = rec.get("title")
    if value is None:
        raise BadRecord("title", "missing")
    title = clean_title(_str("title", value, LIMITS["title"]))
    if not title:
        raise BadRecord("title", "empty")
    return title


def _categories(values: Sequence[object]) -> list[str]:
    if len(values) > MAX_CATEGORIES:
        raise BadRecord("categories", f"{len(values)} categories (at most {MAX_CATEGORIES})")
    out: list[str] = []
    for c in values:
        if not isinstance(c, str) or not CATEGORY.fullmatch(c):
            shown = repr(c[:30]) if isinstance(c, str) else _kind(c)
            raise BadRecord("categories", f"{shown} is not a category code")
        if c not in out:
            out.append(c)
    return out


def _version(field: str, value: object) -> int:
    if isinstance(value, str) and re.fullmatch(r"v?[0-9]{1,3}", value):
        value = int(value.lstrip("v"))
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_VERSION:
        shown = repr(value)[:30] if isinstance(value, (int, str)) else _kind(value)
        raise BadRecord(field, f"{shown} is not a version number (1 to {MAX_VERSION})")
    return value


def _authors(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return split_authors(_str("authors", value, LIMITS["authors"]))
    if not isinstance(value, list):
        raise BadRecord("authors", f"expected a list of names or text, got {_kind(value)}")
    return split_authors([_str("authors", a, LIMITS["author"]) for a in value if a is not None])


def _snapshot_authors(rec: dict[str, Any]) -> list[str]:
    parsed = rec.get("authors_parsed")
    if not parsed:
        return _authors(rec.get("authors"))
    if not isinstance(parsed, list):
        raise BadRecord("authors_parsed", f"expected a list, got {_kind(parsed)}")
    names = []
    for a in parsed:
        if not isinstance(a, list) or not 1 <= len(a) <= 4:
            raise BadRecord("authors_parsed", f"expected [last, first, suffix] lists, got {_kind(a)}")
        parts = [_str("authors_parsed", x, LIMITS["author"]) for x in a]
        last, first, suffix = parts[0], parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else ""
        name = clean_title(" ".join(x for x in (first, last, suffix) if x))
        if name:
            names.append(name)
    return names


def _rfc2822(field: str, value: object) -> str:
    text = _str(field, value, 100)
    try:
        stamp = email.utils.parsedate_to_datetime(text).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError, IndexError):
        raise BadRecord(field, f"{text[:40]!r} is not an RFC 2822 date") from None
    try:
        return timestamp(stamp)
    except BadDay as exc:
        raise BadRecord(field, str(exc)) from None


def _snapshot_record(rec: dict[str, Any]) -> Paper:
    versions = rec.get("versions")
    if versions is None:
        versions = []
    if not isinstance(versions, list) or not all(isinstance(v, dict) for v in versions):
        raise BadRecord("versions", "expected a list of {version, created} objects")
    version, published, updated = 1, None, None
    if versions:
        version = _version("versions", versions[-1].get("version", f"v{len(versions)}"))
        published = _rfc2822("versions", versions[0].get("created"))
        updated = _rfc2822("versions", versions[-1].get("created"))
    update_date = _date(rec, "update_date", timestamp)
    cats = rec.get("categories")
    return Paper(
        id=_id(rec), version=version, title=_title(rec),
        abstract=clean_abstract(_opt_str(rec, "abstract") or ""), authors=_snapshot_authors(rec),
        categories=_categories(_str("categories", cats, 2_000).split() if cats is not None else []),
        comment=_opt_str(rec, "comments", "comment"), journal_ref=_opt_str(rec, "journal-ref", "journal_ref"),
        doi=_opt_str(rec, "doi"), published=published,
        updated=updated or (f"{update_date[:10]}T00:00:00Z" if update_date else None), source="snapshot",
    )


def _corpus_record(rec: dict[str, Any]) -> Paper:
    raw_cats = rec.get("categories")
    if raw_cats is not None and not isinstance(raw_cats, list):
        raise BadRecord("categories", f"expected a list of codes, got {_kind(raw_cats)}")
    cats = _categories(raw_cats or [])
    primary = rec.get("primary_category")
    if primary is not None:
        primary = _categories([primary])[0] if primary != "" else None
    if primary and (not cats or cats[0] != primary):
        cats = [primary] + [c for c in cats if c != primary]
    version = rec.get("version")
    announced = _date(rec, "announced", announcement_day)
    return Paper(
        id=_id(rec), version=1 if version is None else _version("version", version), title=_title(rec),
        abstract=clean_abstract(_opt_str(rec, "abstract") or ""), authors=_authors(rec.get("authors")),
        categories=cats, comment=_opt_str(rec, "comment"), journal_ref=_opt_str(rec, "journal_ref"),
        doi=_opt_str(rec, "doi"), published=_date(rec, "published", timestamp),
        updated=_date(rec, "updated", timestamp), announced=announced,
        announce_type="new" if announced else None, source="corpus",
    )


def record_to_paper(rec: Any) -> Paper:
    """A paper from one JSON record of either format; raises :class:`BadRecord` naming the bad field."""
    if not isinstance(rec, dict):
        raise BadRecord("record", f"expected a JSON object, got {_kind(rec)}")
    if "versions" in rec or isinstance(rec.get("categories"), str):
        return _snapshot_record(rec)
    return _corpus_record(rec)


def iter_file(path: Path | str, report: ImportReport | None = None,
              keep: Callable[[Paper], bool] | None = None, progress: bool = False) -> Iterator[Paper]:
    """Stream papers from a corpus/snapshot file (gzip or not), counting bad lines and records in ``report``."""
    path = Path(path)
    report = report if report is not None else ImportReport()
    total = path.stat().st_size if path.is_file() else 0
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"import {path.name}", disable=not progress)
    try:
        for lineno, rec in iter_records(path, report, on_bytes=bar.update):
            try:
                paper = record_to_paper(rec)
            except BadRecord as exc:
                report.skip(lineno, str(exc), exc.field)
                continue
            if keep is not None and not keep(paper):
                report.skipped_category += 1
                continue
            yield paper
    finally:
        bar.close()


def category_filter(categories: set[str]) -> Callable[[Paper], bool]:
    """Keep papers with a category in ``categories``; an archive name (``cs``, ``astro-ph``) matches all its
    categories."""
    exact = {c for c in categories}
    archives = {c for c in categories if "." not in c}

    def keep(p: Paper) -> bool:
        return any(c in exact or c.split(".")[0] in archives for c in p.categories)

    return keep


def import_file(store: Store, path: Path | str, categories: set[str] | None = None, progress: bool = False,
                batch_size: int = 5000) -> tuple[ImportReport, dict[str, int]]:
    """Import a file into ``store`` atomically; returns (read report, upsert counts)."""
    report = ImportReport()
    keep = category_filter(categories) if categories else None
    with store.transaction():
        stats = store.upsert_papers(iter_file(path, report, keep, progress), batch_size=batch_size)
    report.stored = stats.inserted + stats.updated
    if report.bad_lines:
        log.warning("%s: skipped %d bad line(s) %s, e.g. %s", path, report.bad_lines, report.bad_fields,
                    "; ".join(report.bad_examples[:3]))
    return report, stats.to_dict()
