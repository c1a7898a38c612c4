"""How papers, digests and category predictions look in a chat, as transport-free :class:`Rich` text.

One place decides the layout of a paper card (title as a link, first authors, categories, the "why" line),
of a compact digest (numbered items with one row of like/dislike/more buttons each) and of BibTeX entries,
so the Telegram and terminal front ends, and deliveries, always agree.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from recommender.models import Paper

from . import buttons as codes
from .reply import Button
from .rich import Rich

MAX_AUTHORS = 3
TITLE_MAX = 300


def clean(text: str, limit: int = TITLE_MAX) -> str:
    """One line of text: whitespace collapsed, cut at ``limit`` characters with an ellipsis."""
    one = " ".join(str(text or "").split())
    return one if len(one) <= limit else one[: limit - 1].rstrip() + "…"


def authors_line(authors: Sequence[str] | str) -> str:
    names = [authors] if isinstance(authors, str) else list(authors)
    if len(names) == 1 and "," in names[0]:
        names = [n.strip() for n in names[0].split(",") if n.strip()]
    names = [clean(n, 60) for n in names if n]
    if not names:
        return "unknown authors"
    shown = ", ".join(names[:MAX_AUTHORS])
    return shown + (" et al." if len(names) > MAX_AUTHORS else "")


def categories_line(paper: Paper, predicted: Sequence[tuple[str, float]] = ()) -> str:
    """Listed categories, then the classifier's top predictions (at most 3, >= 20%)."""
    listed = " ".join(paper.categories[:4]) or "uncategorised"
    top = [f"{c} {p:.0%}" for c, p in sorted(predicted, key=lambda x: -x[1]) if p >= 0.2][:3]
    return listed + (f" · predicted {', '.join(top)}" if top else "")


def paper_card(out: Rich, paper: Paper, number: int | None = None, why: str = "",
               predicted: Sequence[tuple[str, float]] = (), score: float | None = None) -> Rich:
    """Append a paper card to ``out``."""
    if number is not None:
        out.b(f"{number}. ")
    out.link(clean(paper.title), paper.url).nl()
    out.text(authors_line(paper.authors)).nl()
    meta = f"{paper.id} · {categories_line(paper, predicted)}"
    if score is not None:
        meta += f" · score {score:.2f}"
    out.i(meta).nl()
    if why:
        out.text("↳ " + clean(why, 200)).nl()
    return out


def digest_buttons(numbered: Iterable[tuple[int, str]], liked: set[str], disliked: set[str]) -> list[list[Button]]:
    """One row per paper: like, dislike, more like this; labels show the current feedback."""
    rows: list[list[Button]] = []
    for n, pid in numbered:
        rows.append([
            Button(f"✅ {n}" if pid in liked else f"👍 {n}", codes.like(n, pid)),
            Button(f"🚫 {n}" if pid in disliked else f"👎 {n}", codes.dislike(n, pid)),
            Button(f"🔎 more like {n}", codes.similar(pid)),
        ])
    return rows


def numbered_ids(buttons: list[list[Button]]) -> list[tuple[int, str]]:
    """The (number, paper id) pairs of a digest keyboard, read back from its button data."""
    return codes.numbered_ids([b.data for row in buttons for b in row])


def _bibkey(paper: Paper) -> str:
    first = authors_line(paper.authors).split(",")[0].split(" et al.")[0].split()
    surname = re.sub(r"[^A-Za-z]", "", first[-1] if first else "") or "arxiv"
    return f"{surname.lower()}{paper.id.replace('/', '_').replace('.', '_')}"


def _bib_escape(text: str) -> str:
    return clean(text, 5000).replace("{", "\\{").replace("}", "\\}").replace("&", "\\&").replace("%", "\\%")


def bibtex(papers: Iterable[Paper]) -> str:
    entries = []
    for p in papers:
        names = p.authors if isinstance(p.authors, list) else [p.authors]
        year = ""
        m = re.match(r"^(\d{2})(\d{2})\.", p.id) or re.match(r"^[^/]+/(\d{2})(\d{2})", p.id)
        if m:
            yy = int(m[1])
            year = str(2000 + yy if yy < 90 else 1900 + yy)
        fields = [
            ("title", "{" + _bib_escape(p.title) + "}"),
            ("author", " and ".join(_bib_escape(n) for n in names if n) or "Unknown"),
            ("year", year),
            ("eprint", p.id),
            ("archivePrefix", "arXiv"),
            ("primaryClass", p.primary_category or ""),
            ("url", p.url),
        ]
        if p.doi:
            fields.append(("doi", p.doi))
        body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields if v)
        entries.append(f"@misc{{{_bibkey(p)},\n{body}\n}}")
    return "\n\n".join(entries) + "\n"
