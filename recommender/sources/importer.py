"""Bulk import of papers from files: arXiv's metadata snapshot (Kaggle format) and our own corpus JSONL.

Files are streamed line by line (gzip or plain, detected from the magic bytes), so memory stays flat in the
file size; the 4.5 GB snapshot is never loaded whole. The format is detected per line (a snapshot record has
``categories`` as a space-separated string and ``versions``). A line of bad JSON or a record without id/title
is skipped and counted; a truncated gzip or unreadable file aborts the import and rolls back everything it
wrote (the import is one transaction of batched writes), so a failed import leaves the store as it was.
"""
from __future__ import annotations

import email.utils
import gzip
import io
import json
import logging
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from tqdm import tqdm

from recommender.sources.arxiv import clean_abstract, clean_title, split_authors
from recommender.ids import InvalidArxivId, parse_arxiv_id
from recommender.models import ImportReport, Paper

log = logging.getLogger(__name__)


class ImportFileError(RuntimeError):
    """The file cannot be read to the end (missing, truncated, not text)."""


def _open_binary(path: Path) -> tuple[BinaryIO, BinaryIO]:
    """(raw file for progress, stream of decompressed bytes)."""
    raw = open(path, "rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return raw, gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw, raw


def _snapshot_record(rec: dict[str, Any]) -> Paper:
    versions = rec.get("versions") or []
    version = 1
    published = updated = None
    if versions:
        try:
            version = int(str(versions[-1].get("version", "v1")).lstrip("v") or 1)
        except ValueError:
            version = len(versions)
        published = _rfc2822(versions[0].get("created"))
        updated = _rfc2822(versions[-1].get("created"))
    parsed = rec.get("authors_parsed")
    if parsed:
        authors = [" ".join(x for x in (a[1] if len(a) > 1 else "", a[0], a[2] if len(a) > 2 else "") if x)
                   for a in parsed]
    else:
        authors = split_authors(rec.get("authors"))
    return Paper(
        id=parse_arxiv_id(str(rec["id"])).id, version=version, title=clean_title(rec["title"]),
        abstract=clean_abstract(rec.get("abstract") or ""), authors=authors,
        categories=str(rec.get("categories") or "").split(), comment=rec.get("comments"),
        journal_ref=rec.get("journal-ref"), doi=rec.get("doi"), published=published,
        updated=updated or (rec.get("update_date") and f"{rec['update_date']}T00:00:00Z"), source="snapshot",
    )


def _corpus_record(rec: dict[str, Any]) -> Paper:
    cats = list(rec.get("categories") or [])
    primary = rec.get("primary_category")
    if primary and (not cats or cats[0] != primary):
        cats = [primary] + [c for c in cats if c != primary]
    announced = rec.get("announced")
    return Paper(
        id=parse_arxiv_id(str(rec["id"])).id, version=int(rec.get("version") or 1),
        title=clean_title(rec["title"]), abstract=clean_abstract(rec.get("abstract") or ""),
        authors=split_authors(rec.get("authors")), categories=cats, comment=rec.get("comment"),
        journal_ref=rec.get("journal_ref"), doi=rec.get("doi"), published=rec.get("published"),
        updated=rec.get("updated"), announced=announced, announce_type="new" if announced else None,
        source="corpus",
    )


def _rfc2822(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return None


def record_to_paper(rec: Any) -> Paper:
    """A paper from one JSON record of either format; raises ValueError/KeyError on an unusable record."""
    if not isinstance(rec, dict):
        raise ValueError("record is not a JSON object")
    if not rec.get("id") or not rec.get("title"):
        raise ValueError("record lacks id or title")
    if "versions" in rec or isinstance(rec.get("categories"), str):
        return _snapshot_record(rec)
    return _corpus_record(rec)


def iter_file(path: Path | str, report: ImportReport | None = None,
              keep: Callable[[Paper], bool] | None = None, progress: bool = False) -> Iterator[Paper]:
    """Stream papers from a corpus/snapshot file (gzip or not), counting bad lines in ``report``."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file")
    report = report if report is not None else ImportReport()
    raw, stream = _open_binary(path)
    total = path.stat().st_size
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"import {path.name}", disable=not progress)
    try:
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace")  # type: ignore[arg-type]
        lineno = 0
        last_pos = 0
        while True:
            try:
                line = text.readline()
            except (EOFError, OSError, zlib.error) as exc:
                raise ImportFileError(
                    f"{path}: cannot read past line {lineno} ({type(exc).__name__}: {exc}); "
                    "the file is truncated or corrupt, nothing was imported") from None
            if not line:
                break
            lineno += 1
            if lineno % 2000 == 0:
                pos = raw.tell()
                bar.update(pos - last_pos)
                last_pos = pos
            if not line.strip():
                continue
            report.read += 1
            try:
                paper = record_to_paper(json.loads(line))
            except (json.JSONDecodeError, ValueError, KeyError, TypeError, InvalidArxivId, AttributeError) as exc:
                report.bad_lines += 1
                if len(report.bad_examples) < 5:
                    report.bad_examples.append(f"line {lineno}: {type(exc).__name__}: {str(exc)[:120]}")
                continue
            if keep is not None and not keep(paper):
                report.skipped_category += 1
                continue
            yield paper
        bar.update(total - last_pos)
    finally:
        bar.close()
        raw.close()


def category_filter(categories: set[str]) -> Callable[[Paper], bool]:
    """Keep papers with a category in ``categories``; an archive name (``cs``, ``astro-ph``) matches all its
    categories."""
    exact = {c for c in categories}
    archives = {c for c in categories if "." not in c}

    def keep(p: Paper) -> bool:
        return any(c in exact or c.split(".")[0] in archives for c in p.categories)

    return keep


def import_file(store: Any, path: Path | str, categories: set[str] | None = None, progress: bool = False,
                batch_size: int = 5000) -> tuple[ImportReport, dict[str, int]]:
    """Import a file into ``store`` atomically; returns (read report, upsert counts)."""
    report = ImportReport()
    keep = category_filter(categories) if categories else None
    with store.transaction():
        stats = store.upsert_papers(iter_file(path, report, keep, progress), batch_size=batch_size)
    report.stored = stats.inserted + stats.updated
    if report.bad_lines:
        log.warning("%s: skipped %d bad line(s), e.g. %s", path, report.bad_lines, "; ".join(report.bad_examples[:3]))
    return report, stats.to_dict()
