"""arXiv's category taxonomy as typed records: the one parser of ``data/taxonomy.json``.

``taxonomy.json`` is arXiv's own definitions (groups, archives, categories, aliases such as ``math.MP`` ->
``math-ph`` and subsumed archives such as ``chao-dyn`` -> ``nlin.CD``). :func:`read_taxonomy` turns it into a
:class:`Taxonomy` of :class:`Category` records, one per known code (aliases included); the store loads them into
its ``taxonomy`` table and training takes its label space (the active canonical categories) from them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Category:
    """One category code; ``canonical`` is the code it resolves to (itself unless an alias)."""

    code: str
    name: str
    archive: str | None
    group: str | None  # display name of its group, e.g. "Computer Science"
    active: bool
    canonical: str

    @property
    def is_canonical(self) -> bool:
        return self.canonical == self.code


@dataclass(frozen=True)
class Taxonomy:
    """Every known code (aliases included) and the alias map."""

    categories: tuple[Category, ...]
    aliases: dict[str, str]  # alias or subsumed archive -> canonical code

    def active_canonical(self) -> list[Category]:
        """The active canonical categories (arXiv's current label space), sorted by code."""
        return sorted((c for c in self.categories if c.active and c.is_canonical), key=lambda c: c.code)


def read_taxonomy(path: Path) -> Taxonomy:
    """Parse arXiv's taxonomy JSON; raises FileNotFoundError (with a hint) when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"taxonomy not found at {path}; copy ../shared/data/taxonomy.json there")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    aliases: dict[str, str] = {**data.get("category_aliases", {}), **data.get("archives_subsumed", {})}
    group_names = {gid: g.get("full_name", gid) for gid, g in data.get("groups", {}).items()}
    archives: dict[str, dict[str, Any]] = data.get("archives", {})
    simple: dict[str, dict[str, Any]] = data.get("simple", {})
    active = set(data.get("active", []))
    known: dict[str, dict[str, Any]] = data["categories"]
    out: list[Category] = []
    for code, cat in known.items():
        archive = cat.get("in_archive")
        group = group_names.get(archives.get(archive or "", {}).get("in_group", ""))
        if code in simple:
            group = simple[code].get("group", group)
        out.append(Category(code, cat.get("full_name") or code, archive, group, code in active,
                            aliases.get(code, code)))
    for code, target in aliases.items():
        if code not in known:
            out.append(Category(code, known.get(target, {}).get("full_name", target), code, None, False, target))
    return Taxonomy(tuple(out), aliases)
