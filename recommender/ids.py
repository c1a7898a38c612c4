"""arXiv identifiers: parse ids and abs/pdf URLs into the canonical id without version.

New-style ids are ``YYMM.NNNN`` (2007-2014) or ``YYMM.NNNNN`` (2015 on), old-style ids are
``archive[.SUBJ]/YYMMNNN``. A version suffix (``v3``) and arXiv URLs (``https://arxiv.org/abs/...``,
``/pdf/...``, ``.pdf``) are accepted and stripped. Anything else raises :class:`InvalidArxivId` with a
message fit to show a user. :func:`looks_like_id` is the one test of whether text is meant as an id (valid or
not) rather than free text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

NEW_STYLE = re.compile(r"^(?P<yymm>\d{4})\.(?P<num>\d{4,5})(?:v(?P<v>\d+))?$")
OLD_STYLE = re.compile(r"^(?P<archive>[a-z][a-z\-]+(?:\.[A-Z]{2})?)/(?P<num>\d{7})(?:v(?P<v>\d+))?$")
URL_PREFIX = re.compile(
    r"^(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/", re.IGNORECASE
)
# one token shaped like an id or an arXiv link, whether or not it is a valid one
ID_SHAPE = re.compile(r"^\s*(?:arxiv:|https?://|(?:www\.|export\.)?arxiv\.org/)?\S*"
                      r"(?:\d{4}\.\d+|[a-z\-]+(?:\.[A-Z]{2})?/\d{5,})(?:v\d+)?(?:\.pdf)?/?\s*$", re.IGNORECASE)


class InvalidArxivId(ValueError):
    """Raised for text that is not an arXiv id or link."""


@dataclass(frozen=True)
class ArxivId:
    id: str
    version: int | None = None

    def __str__(self) -> str:
        return self.id


def parse_arxiv_id(text: str) -> ArxivId:
    """Parse an id or arXiv URL, returning the id without version plus the version if one was given."""
    if not isinstance(text, str):
        raise InvalidArxivId(f"not an arXiv id: {text!r}")
    raw = text.strip()
    shown = raw if len(raw) <= 60 else raw[:57] + "..."
    s = URL_PREFIX.sub("", raw)
    s = re.sub(r"^arxiv:", "", s, flags=re.IGNORECASE)
    s = s.split("?")[0].split("#")[0].rstrip("/")
    if s.lower().endswith(".pdf"):
        s = s[:-4]
    m = NEW_STYLE.match(s)
    if m:
        month = int(m["yymm"][2:])
        year = int(m["yymm"][:2])
        if not 1 <= month <= 12:
            raise InvalidArxivId(f"{shown!r} is not an arXiv id: month {month:02d} does not exist")
        # 5-digit numbers started in 1501; before that there were 4.
        if len(m["num"]) == 5 and (year, month) < (15, 1):
            raise InvalidArxivId(f"{shown!r} is not an arXiv id: ids before 1501 have 4 digits after the dot")
        if len(m["num"]) == 4 and (year, month) >= (15, 1):
            raise InvalidArxivId(f"{shown!r} is not an arXiv id: ids since 1501 have 5 digits after the dot")
        return ArxivId(f"{m['yymm']}.{m['num']}", int(m["v"]) if m["v"] else None)
    m = OLD_STYLE.match(s)
    if m:
        return ArxivId(f"{m['archive']}/{m['num']}", int(m["v"]) if m["v"] else None)
    raise InvalidArxivId(
        f"{shown!r} is not an arXiv id. Use an id like 2501.01234 or hep-th/9901002, "
        "or a link like https://arxiv.org/abs/2501.01234"
    )


def looks_like_id(text: str) -> bool:
    """True for text shaped like one arXiv id or link, valid or not (``2513.00001`` too): digits.digits,
    ``archive[.XX]/NNNNN...`` or an arXiv URL. Callers use it to tell an id meant by the user from free text,
    then :func:`parse_arxiv_id` it for the canonical id or the precise reason it is not one."""
    return isinstance(text, str) and ID_SHAPE.match(text) is not None
