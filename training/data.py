"""Load papers for training: from a corpus JSONL (optionally gzipped) or from the store, with canonical labels.

Labels are arXiv's active canonical categories (``taxonomy.json``: aliases and subsumed archives mapped, e.g.
``math.MP`` -> ``math-ph``); papers without any known label are dropped and counted. Master categories are
the taxonomy groups that have active categories.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from recommender.sources.corpus import BadLine, iter_dicts
from recommender.taxonomy import read_taxonomy
from training.config import TAXONOMY_PATH

log = logging.getLogger(__name__)


@dataclass
class Labels:
    """The label space: category codes (sorted), their names and groups, and the groups (master categories)."""

    codes: list[str]
    names: dict[str, str]
    group_of: dict[str, str]
    groups: list[str]
    aliases: dict[str, str]

    @classmethod
    def from_taxonomy(cls, path: Path = TAXONOMY_PATH) -> Labels:
        taxonomy = read_taxonomy(path)
        cats = taxonomy.active_canonical()
        group_of = {c.code: c.group or "Other" for c in cats}
        return cls([c.code for c in cats], {c.code: c.name for c in cats}, group_of,
                   sorted(set(group_of.values())), dict(taxonomy.aliases))

    def canonical(self, categories: list[str]) -> list[str]:
        """Map raw codes to active canonical ones, keep order, drop unknown and duplicates."""
        known = set(self.codes)
        out: list[str] = []
        for c in categories:
            c = self.aliases.get(c, c)
            if c in known and c not in out:
                out.append(c)
        return out

    def to_dict(self) -> dict:
        return {"categories": [{"code": c, "name": self.names[c], "group": self.group_of[c]} for c in self.codes],
                "groups": self.groups}


@dataclass
class Record:
    id: str
    title: str
    abstract: str
    labels: list[str]
    announced: str | None


def load_records(path: Path, labels: Labels, progress: bool = True) -> list[Record]:
    """All papers of a corpus-format JSONL that have at least one known category."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"corpus file not found: {path}")
    out: list[Record] = []
    dropped = 0
    # a training corpus must be clean: the first bad JSON line raises, naming it
    for d in tqdm(iter_dicts(path, strict=True), desc=f"reading {Path(path).name}", unit=" papers",
                  disable=not progress):
        if "title" not in d or "categories" not in d:
            raise ValueError(f"{path}: a line lacks 'title' or 'categories' (id {d.get('id')!r}); not corpus format")
        cats = d["categories"]
        if isinstance(cats, str):
            cats = cats.split()
        if not isinstance(cats, list) or not isinstance(d["title"] or "", str) \
                or not isinstance(d.get("abstract") or "", str):
            raise BadLine(f"{path}: id {str(d.get('id'))[:30]!r} has a title, abstract or categories of the "
                             "wrong JSON type; not corpus format")
        cats = [c for c in cats if isinstance(c, str)]
        lab = labels.canonical(cats)
        if not lab:
            dropped += 1
            continue
        out.append(Record(str(d.get("id", "")), d["title"] or "", d.get("abstract") or "", lab, d.get("announced")))
    if dropped:
        log.info("dropped %d papers without a known active category", dropped)
    if not out:
        raise ValueError(f"{path}: no papers with known categories")
    return out


def load_records_from_store(db_path: Path, labels: Labels) -> list[Record]:
    """All papers of the SQLite store (for `train` without --data)."""
    from recommender.store import Store  # local import: only this path needs the store

    out: list[Record] = []
    with Store(db_path) as store:
        for p in tqdm(store.iter_papers(), desc="reading store", unit=" papers"):
            lab = labels.canonical(list(p.categories))
            if lab:
                out.append(Record(p.id, p.title, p.abstract or "", lab, p.announced))
    if not out:
        raise ValueError(f"store {db_path} holds no papers with known categories")
    return out
