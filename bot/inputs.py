"""What users type, made safe to use: small ASCII integers within bounds, and text cleaned of invisible characters.

``str.isdigit()`` is true for ``²`` and ``٣``, and ``int()`` then either raises or accepts digits nobody meant;
a check of the first few characters lets ``00019999`` through. :func:`ascii_int` accepts only ASCII digits,
a bounded number of them, within the caller's bounds, and returns None otherwise, so commands, buttons and
the terminal turn any other input into a helpful reply instead of a crash. :func:`visible_text` removes
zero-width, format and control characters and collapses whitespace; :func:`has_words` tells real words
(letters) from punctuation, digits or nothing.
"""
from __future__ import annotations

import re
import unicodedata

_ASCII_INT = re.compile(r"[0-9]{1,9}")
_WORD = re.compile(r"[^\W\d_]{2,}")  # two letters in a row, in any script


def ascii_int(text: str, lo: int, hi: int) -> int | None:
    """``text`` (surrounding spaces allowed) as an integer in ``lo..hi``; None if it is anything else."""
    t = text.strip()
    if not _ASCII_INT.fullmatch(t):
        return None
    value = int(t)
    return value if lo <= value <= hi else None


def ascii_number(text: str, lo: float, hi: float) -> float | None:
    """A decimal number written with ASCII digits (``0.25``, ``,25`` or ``0,25``) in ``lo..hi``; else None."""
    t = text.strip().replace(",", ".")
    if not re.fullmatch(r"[0-9]{0,3}(?:\.[0-9]{1,6})?", t) or t in {"", "."}:
        return None
    value = float(t)
    return value if lo <= value <= hi else None


def visible_text(text: str) -> str:
    """``text`` without zero-width, format (Cf) and control (Cc) characters, whitespace collapsed to spaces."""
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cc" and ch not in "\t\n\r":
            continue
        if cat in {"Cf", "Co", "Cs", "Cn"}:
            continue
        kept.append(ch)
    return " ".join("".join(kept).split())


def has_words(text: str) -> bool:
    """Whether ``text`` holds at least one real word (two letters in a row)."""
    return _WORD.search(text) is not None
