"""SQL for papers: batched idempotent upserts, authors and categories, announcements, lookups.

A paper's identity is its arXiv id without version. Writing the same record twice changes nothing (a content
hash decides); a newer version (or the same version with changed metadata) updates the paper in place and
replaces its authors and categories; an older version never overwrites a newer one. The day a paper was first
announced is kept when later listings (replacements) arrive; every listing is recorded in ``announcements``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Self

from recommender.days import EARLIEST, is_announcement_day, latest_allowed
from recommender.models import Paper

log = logging.getLogger(__name__)

PAPER_COLUMNS = (
    "id", "version", "title", "abstract", "authors", "primary_category", "comment", "journal_ref", "doi",
    "published", "updated", "announced", "announce_type", "source", "content_hash",
)


@dataclass
class UpsertStats:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    text_changed: list[str] = field(default_factory=list)  # updated papers whose title or abstract changed

    def __iadd__(self, other: UpsertStats) -> Self:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.text_changed.extend(other.text_changed)
        return self

    def to_dict(self) -> dict[str, int]:
        return {"inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged}


def content_hash(p: Paper) -> str:
    payload = json.dumps(
        [p.version, p.title, p.abstract, p.authors, p.categories, p.comment, p.journal_ref, p.doi,
         p.published, p.updated],
        ensure_ascii=False, separators=(",", ":"),
    )
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def _chunks(items: Sequence[str], size: int = 900) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class PaperQueries:
    """Mixin of :class:`recommender.store.Store` holding the paper SQL. Expects ``self.conn``."""

    if TYPE_CHECKING:  # provided by Store
        @property
        def conn(self) -> sqlite3.Connection: ...

        def transaction(self) -> AbstractContextManager[None]: ...

    # -- writes -----------------------------------------------------------------------------------------
    def upsert_papers(self, papers: Iterable[Paper], batch_size: int = 5000) -> UpsertStats:
        """Insert or update papers in transactions of ``batch_size``; returns counts."""
        stats = UpsertStats()
        batch: list[Paper] = []
        for paper in papers:
            batch.append(paper)
            if len(batch) >= batch_size:
                stats += self._upsert_batch(batch)
                batch = []
        if batch:
            stats += self._upsert_batch(batch)
        return stats

    def _upsert_batch(self, papers: list[Paper]) -> UpsertStats:
        stats = UpsertStats()
        # last occurrence wins inside a batch, unless it is an older version
        by_id: dict[str, Paper] = {}
        for p in (dataclasses.replace(p) for p in papers):  # never mutate the caller's objects
            if p.announced is not None and not is_announcement_day(p.announced):
                log.warning("paper %s: ignoring its announcement day %r (not a date from 1991 to tomorrow)",
                            p.id, p.announced)
                p.announced, p.announce_type = None, None
            prev = by_id.get(p.id)
            if prev is None or p.version >= prev.version:
                if prev is not None and p.announced is None:
                    p.announced, p.announce_type = prev.announced, prev.announce_type
                by_id[p.id] = p
        ids = list(by_id)
        existing: dict[str, tuple[int, str, str | None, str | None, str]] = {}
        for chunk in _chunks(ids):
            q = (f"SELECT id, version, content_hash, announced, announce_type, title || char(0) || abstract "
                 f"FROM papers WHERE id IN ({','.join('?' * len(chunk))})")
            for row in self.conn.execute(q, chunk):
                existing[row[0]] = (row[1], row[2], row[3], row[4], row[5])
        to_write: list[Paper] = []
        hashes: dict[str, str] = {}
        fill_announced: list[tuple[str, str | None, str]] = []
        for pid, p in by_id.items():
            h = content_hash(p)
            old = existing.get(pid)
            if old is None:
                stats.inserted += 1
            else:
                old_version, old_hash, old_announced, old_type, old_text = old
                # keep the first announcement day; a replacement listing does not make a paper new again
                if old_announced is not None:
                    p.announced, p.announce_type = old_announced, old_type
                elif p.announced is not None and p.announce_type in ("replace", "replace-cross"):
                    p.announced, p.announce_type = None, None
                if p.version < old_version or (p.version == old_version and h == old_hash):
                    if old_announced is None and p.announced is not None:
                        fill_announced.append((p.announced, p.announce_type, pid))
                    stats.unchanged += 1
                    continue
                stats.updated += 1
                if old_text != f"{p.title}\0{p.abstract}":
                    stats.text_changed.append(pid)
            if p.announce_type in ("replace", "replace-cross") and old is None:
                # first seen through a replacement: it is not a new paper of that day
                p.announced, p.announce_type = None, None
            hashes[pid] = h
            to_write.append(p)
        if not to_write and not fill_announced:
            return stats
        with self.transaction():
            if to_write:
                self._write_papers(to_write, hashes)
            if fill_announced:
                self.conn.executemany(
                    "UPDATE papers SET announced = ?, announce_type = ? WHERE id = ? AND announced IS NULL",
                    fill_announced,
                )
        return stats

    def _write_papers(self, papers: list[Paper], hashes: dict[str, str]) -> None:
        rows = [
            (p.id, p.version, p.title, p.abstract, ", ".join(p.authors), p.primary_category, p.comment,
             p.journal_ref, p.doi, p.published, p.updated, p.announced, p.announce_type, p.source, hashes[p.id])
            for p in papers
        ]
        placeholders = ",".join("?" * len(PAPER_COLUMNS))
        updates = ",".join(f"{c}=excluded.{c}" for c in PAPER_COLUMNS[1:])
        self.conn.executemany(
            f"INSERT INTO papers ({','.join(PAPER_COLUMNS)}) VALUES ({placeholders}) "
            f"ON CONFLICT(id) DO UPDATE SET {updates}",
            rows,
        )
        ids = [(p.id,) for p in papers]
        self.conn.executemany("DELETE FROM paper_authors WHERE paper_id = ?", ids)
        self.conn.executemany("DELETE FROM paper_categories WHERE paper_id = ?", ids)
        names = {name for p in papers for name in p.authors}
        self.conn.executemany("INSERT OR IGNORE INTO authors (name) VALUES (?)", ((n,) for n in names))
        author_ids: dict[str, int] = {}
        name_list = list(names)
        for chunk in _chunks(name_list):
            q = f"SELECT name, id FROM authors WHERE name IN ({','.join('?' * len(chunk))})"
            author_ids.update(self.conn.execute(q, chunk).fetchall())
        self.conn.executemany(
            "INSERT OR IGNORE INTO paper_authors (paper_id, position, author_id) VALUES (?, ?, ?)",
            ((p.id, i, author_ids[name]) for p in papers for i, name in enumerate(p.authors)),
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO paper_categories (paper_id, category, is_primary, position) VALUES (?, ?, ?, ?)",
            ((p.id, c, int(i == 0), i) for p in papers for i, c in enumerate(p.categories)),
        )
        listings = [(p.id, p.announced, p.announce_type) for p in papers if p.announced and p.announce_type]
        self.conn.executemany(
            "INSERT OR IGNORE INTO announcements (paper_id, announced, announce_type) VALUES (?, ?, ?)", listings
        )

    def record_announcements(self, listings: Iterable[tuple[str, str, str]]) -> int:
        """Record (paper_id, day, type) listings; returns how many were new. Papers must be stored first."""
        good = []
        for listing in listings:
            if is_announcement_day(listing[1]):
                good.append(listing)
            else:
                log.warning("ignoring the listing %r: not a date from 1991 to tomorrow", listing)
        before = self.conn.total_changes
        with self.transaction():
            self.conn.executemany(
                "INSERT OR IGNORE INTO announcements (paper_id, announced, announce_type) VALUES (?, ?, ?)", good)
        return self.conn.total_changes - before

    def record_feed_fetch(self, categories: Sequence[str], announced: str | None, papers: int) -> None:
        if announced is not None and not is_announcement_day(announced):
            log.warning("feed fetch of %s: ignoring its announcement day %r (not a date from 1991 to tomorrow)",
                        " ".join(categories), announced)
            announced = None
        with self.transaction():
            self.conn.execute(
                "INSERT INTO feed_fetches (fetched_at, categories, announced, papers) "
                "VALUES (strftime('%Y-%m-%dT%H:%M:%SZ','now'), ?, ?, ?)",
                (" ".join(categories), announced, papers),
            )

    # -- reads ------------------------------------------------------------------------------------------
    def _rows_to_papers(self, rows: list[sqlite3.Row]) -> list[Paper]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        authors: dict[str, list[str]] = {i: [] for i in ids}
        cats: dict[str, list[str]] = {i: [] for i in ids}
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            for pid, name in self.conn.execute(
                f"SELECT pa.paper_id, a.name FROM paper_authors pa JOIN authors a ON a.id = pa.author_id "
                f"WHERE pa.paper_id IN ({marks}) ORDER BY pa.paper_id, pa.position", chunk
            ):
                authors[pid].append(name)
            for pid, cat in self.conn.execute(
                f"SELECT paper_id, category FROM paper_categories WHERE paper_id IN ({marks}) "
                f"ORDER BY paper_id, position", chunk
            ):
                cats[pid].append(cat)
        return [
            Paper(
                id=r["id"], version=r["version"], title=r["title"], abstract=r["abstract"],
                authors=authors[r["id"]], categories=cats[r["id"]], comment=r["comment"],
                journal_ref=r["journal_ref"], doi=r["doi"], published=r["published"], updated=r["updated"],
                announced=r["announced"], announce_type=r["announce_type"], source=r["source"],
            )
            for r in rows
        ]

    def get_paper(self, paper_id: str) -> Paper | None:
        rows = self.conn.execute("SELECT * FROM papers WHERE id = ?", (paper_id,)).fetchall()
        papers = self._rows_to_papers(rows)
        return papers[0] if papers else None

    def get_papers(self, ids: Sequence[str]) -> dict[str, Paper]:
        """Papers by id (missing ids are absent from the result)."""
        out: dict[str, Paper] = {}
        ids = list(dict.fromkeys(ids))
        for chunk in _chunks(ids):
            rows = self.conn.execute(
                f"SELECT * FROM papers WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            out.update((p.id, p) for p in self._rows_to_papers(rows))
        return out

    def has_paper(self, paper_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM papers WHERE id = ?", (paper_id,)).fetchone() is not None

    def paper_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT id FROM papers ORDER BY rowid")]

    def iter_paper_ids(self, batch_size: int = 2000) -> Iterator[list[str]]:
        """Every paper id in storage order, a page of ``batch_size`` at a time (bulk jobs stream them)."""
        last = 0
        while True:
            rows = self.conn.execute("SELECT rowid, id FROM papers WHERE rowid > ? ORDER BY rowid LIMIT ?",
                                     (last, batch_size)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [r[1] for r in rows]

    def iter_papers(self, batch_size: int = 2000, ids: Sequence[str] | None = None) -> Iterator[Paper]:
        """All papers (or those in ``ids``), in storage order, fetched in batches."""
        if ids is not None:
            for chunk in _chunks(list(ids), batch_size):
                found = self.get_papers(chunk)
                yield from (found[i] for i in chunk if i in found)
            return
        last = 0
        while True:
            rows = self.conn.execute(
                "SELECT rowid AS _rowid, * FROM papers WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, batch_size)
            ).fetchall()
            if not rows:
                return
            last = rows[-1]["_rowid"]
            yield from self._rows_to_papers(rows)

    def count_papers(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM papers").fetchone()[0])

    def announced_ids(self, day: str, types: Sequence[str] = ("new", "cross"),
                      categories: Sequence[str] | None = None) -> list[str]:
        """Ids of the papers listed on ``day`` with one of ``types``, optionally in one of ``categories``."""
        marks = ",".join("?" * len(types))
        sql = f"SELECT DISTINCT a.paper_id FROM announcements a WHERE a.announced = ? AND a.announce_type IN ({marks})"
        params: list[object] = [day, *types]
        if categories:
            sql += (f" AND a.paper_id IN (SELECT paper_id FROM paper_categories WHERE category IN "
                    f"({','.join('?' * len(categories))}))")
            params += list(categories)
        return [r[0] for r in self.conn.execute(sql + " ORDER BY a.paper_id", params)]

    def announcement_days(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT DISTINCT announced FROM announcements ORDER BY announced")]

    def latest_announcement(self, today: date | None = None) -> str | None:
        """"Today's" announcement: the latest listed day that is a real date no later than tomorrow (UTC).

        Never the plain maximum: one stored day in the future (``2099-01-01``) or not a date at all
        (``9999-99-99``) would otherwise become every digest's day, or crash whoever parses it."""
        limit = latest_allowed(today).isoformat()
        for (day,) in self.conn.execute(
                "SELECT DISTINCT announced FROM announcements WHERE announced <= ? AND announced >= ? "
                "ORDER BY announced DESC", (limit, EARLIEST.isoformat())):
            if is_announcement_day(day, today):
                return str(day)
            log.warning("ignoring the stored announcement day %r: not a date", day)
        return None

    def last_feed_fetch(self) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM feed_fetches ORDER BY rowid DESC LIMIT 1").fetchone()
        return dict(row) if row else None

    def paper_stats(self) -> dict[str, object]:
        c = self.conn
        return {
            "papers": self.count_papers(),
            "authors": c.execute("SELECT count(*) FROM authors").fetchone()[0],
            "announcement_days": c.execute("SELECT count(DISTINCT announced) FROM announcements").fetchone()[0],
            "first_announced": c.execute("SELECT min(announced) FROM papers").fetchone()[0],
            "last_announced": self.latest_announcement(),
            "by_group": {g or "unknown": n for g, n in c.execute(
                "SELECT t.grp, count(*) FROM papers p LEFT JOIN taxonomy t ON t.code = p.primary_category "
                "GROUP BY t.grp ORDER BY count(*) DESC")},
            "top_categories": {cat: n for cat, n in c.execute(
                "SELECT primary_category, count(*) FROM papers GROUP BY primary_category "
                "ORDER BY count(*) DESC LIMIT 10")},
        }
