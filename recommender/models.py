"""Plain data objects shared by the library: papers, feed results, import reports.

Everything outside ``store`` and ``arxiv`` passes these dataclasses around instead of rows or XML, which is what
keeps the rest of the code independent of SQLite and of arXiv's formats.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")


@dataclass
class Paper:
    id: str
    title: str
    abstract: str = ""
    authors: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)  # primary first
    version: int = 1
    comment: str | None = None
    journal_ref: str | None = None
    doi: str | None = None
    published: str | None = None
    updated: str | None = None
    announced: str | None = None  # YYYY-MM-DD of the daily listing
    announce_type: str | None = None  # new | cross | replace | replace-cross
    source: str = ""

    @property
    def primary_category(self) -> str | None:
        return self.categories[0] if self.categories else None

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "version": self.version, "title": self.title, "abstract": self.abstract,
            "authors": list(self.authors), "categories": list(self.categories),
            "primary_category": self.primary_category, "comment": self.comment,
            "journal_ref": self.journal_ref, "doi": self.doi, "published": self.published,
            "updated": self.updated, "announced": self.announced, "announce_type": self.announce_type,
            "source": self.source,
        }


@dataclass
class FeedResult:
    """One daily RSS fetch: the announcement date (None when the feed is empty) and its papers by type."""

    announced: str | None
    papers: list[Paper] = field(default_factory=list)

    def of_type(self, *types: str) -> list[Paper]:
        return [p for p in self.papers if p.announce_type in types]

    @property
    def new(self) -> list[Paper]:
        return self.of_type("new")

    @property
    def cross(self) -> list[Paper]:
        return self.of_type("cross")

    @property
    def replaced(self) -> list[Paper]:
        return self.of_type("replace", "replace-cross")


@dataclass
class ImportReport:
    """What an import read: lines, papers stored, papers outside the wanted categories, and the lines skipped
    (bad JSON or a record with a bad field), counted per field with a few examples naming line and problem."""

    read: int = 0
    stored: int = 0
    skipped_category: int = 0
    bad_lines: int = 0
    bad_examples: list[str] = field(default_factory=list)
    bad_fields: dict[str, int] = field(default_factory=dict)  # "json", "announced", "comment", ... -> lines

    def skip(self, lineno: int, reason: str, field: str = "json") -> None:
        """Count line ``lineno`` as skipped because of ``field`` (``json``: not a JSON object)."""
        self.bad_lines += 1
        self.bad_fields[field] = self.bad_fields.get(field, 0) + 1
        if len(self.bad_examples) < 5:
            self.bad_examples.append(f"line {lineno}: {reason[:160]}")

    def to_dict(self) -> dict[str, Any]:
        return {"read": self.read, "stored": self.stored, "skipped_category": self.skipped_category,
                "bad_lines": self.bad_lines, "bad_fields": dict(self.bad_fields),
                "bad_examples": self.bad_examples[:5]}
