"""Transport-free rich text: a reply is a list of styled spans, rendered to Telegram HTML or plain text.

Commands never write markup by hand: they build :class:`Rich` text out of spans (plain, bold, italic, code,
link), and each front end renders it. ``to_html`` escapes every span, so titles with ``<``, ``&``, ``_``,
``*`` or ``$`` can never break Telegram's parser; ``to_plain`` is what the terminal shows. ``split`` cuts a
text into pieces of at most ``limit`` characters as Telegram counts them (UTF-16 code units of the text
after markup is parsed), preferring paragraph, then line, then word boundaries, never cutting inside a
surrogate pair, and re-opening styles in the next piece.
"""
from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass

STYLES = ("", "b", "i", "code", "a")


@dataclass(frozen=True)
class Span:
    text: str
    style: str = ""  # "" | "b" | "i" | "code" | "a"
    url: str = ""


class Rich:
    """A mutable builder of spans; every method returns ``self`` so calls chain."""

    def __init__(self, spans: Iterable[Span] = ()) -> None:
        self.spans: list[Span] = list(spans)

    # -- building ---------------------------------------------------------------------------------------
    def add(self, text: str, style: str = "", url: str = "") -> Rich:
        if text:
            self.spans.append(Span(str(text), style, url))
        return self

    def text(self, text: str) -> Rich:
        return self.add(text)

    def b(self, text: str) -> Rich:
        return self.add(text, "b")

    def i(self, text: str) -> Rich:
        return self.add(text, "i")

    def code(self, text: str) -> Rich:
        return self.add(text, "code")

    def link(self, text: str, url: str) -> Rich:
        return self.add(text, "a", url)

    def nl(self, n: int = 1) -> Rich:
        return self.add("\n" * n)

    def line(self, text: str = "", style: str = "") -> Rich:
        return self.add(text, style).nl()

    def extend(self, other: Rich) -> Rich:
        self.spans.extend(other.spans)
        return self

    # -- reading ----------------------------------------------------------------------------------------
    @property
    def plain(self) -> str:
        return "".join(s.text for s in self.spans)

    def __len__(self) -> int:
        return utf16_len(self.plain)

    def __bool__(self) -> bool:
        return bool(self.plain.strip())

    def __repr__(self) -> str:
        return f"Rich({self.plain!r})"


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def to_html(rich: Rich) -> str:
    """Telegram HTML (parse_mode=HTML) with every span escaped."""
    out: list[str] = []
    for s in rich.spans:
        t = _escape(s.text)
        if s.style == "a" and s.url:
            out.append(f'<a href="{html.escape(s.url, quote=True)}">{t}</a>')
        elif s.style in ("b", "i", "code"):
            out.append(f"<{s.style}>{t}</{s.style}>")
        else:
            out.append(t)
    return "".join(out)


def to_plain(rich: Rich, show_urls: bool = True) -> str:
    """Plain text for a terminal: links are followed by their URL in angle brackets."""
    out: list[str] = []
    for s in rich.spans:
        if s.style == "a" and s.url and show_urls and s.url != s.text:
            out.append(f"{s.text} <{s.url}>")
        else:
            out.append(s.text)
    return "".join(out)


def _cut_point(text: str, limit: int) -> int:
    """Index (in str characters) where to cut ``text`` so the head has <= ``limit`` UTF-16 units."""
    units = 0
    hard = 0
    for idx, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            break
        hard = idx + 1
    else:
        return len(text)
    head = text[:hard]
    for sep in ("\n\n", "\n", " "):
        pos = head.rfind(sep)
        if pos > hard // 2:
            return pos + len(sep)
    return max(hard, 1)


def split(rich: Rich, limit: int = 4096) -> list[Rich]:
    """Split into pieces of at most ``limit`` UTF-16 units each, keeping span styles."""
    if len(rich) <= limit:
        return [rich]
    plain = rich.plain
    pieces: list[Rich] = []
    start = 0
    # map each character offset to its span
    bounds: list[tuple[int, int, Span]] = []
    pos = 0
    for s in rich.spans:
        bounds.append((pos, pos + len(s.text), s))
        pos += len(s.text)
    while start < len(plain):
        cut = start + _cut_point(plain[start:], limit)
        piece = Rich()
        for a, z, s in bounds:
            lo, hi = max(a, start), min(z, cut)
            if lo < hi:
                piece.add(s.text[lo - a:hi - a], s.style, s.url)
        # drop leading/trailing blank lines a cut may leave
        while piece.spans and not piece.spans[0].text.strip() and len(piece.spans) > 1:
            piece.spans.pop(0)
        if piece:
            pieces.append(piece)
        start = cut
    return pieces or [Rich().text(plain[:limit])]
