"""Text preprocessing shared by classifier training and inference (one definition for both).

A paper's title and abstract become a list of tokens: LaTeX maths (``$...$``, ``$$...$$``, ``\\(...\\)``,
``\\[...\\]``, including dollars nested inside ``\\text{...}`` and escaped ``\\$``) is replaced by the
``-EQN-`` token, text is Unicode-normalised (NFKC) and lower-cased, a fast regex tokeniser keeps word
tokens (letters/digits, with inner hyphens or apostrophes) and drops punctuation, optional learned word
bigrams ("phrases", e.g. ``neural_network``) are merged greedily left to right, and the result is framed
as ``-TITLE_START- title -TITLE_END- -ABSTRACT_START- abstract -ABSTRACT_END-`` and capped in length
(the abstract is truncated first, the four markers always survive).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

EQN = "-EQN-"
TITLE_START, TITLE_END = "-TITLE_START-", "-TITLE_END-"
ABSTRACT_START, ABSTRACT_END = "-ABSTRACT_START-", "-ABSTRACT_END-"
MARKERS = (EQN, TITLE_START, TITLE_END, ABSTRACT_START, ABSTRACT_END)
PHRASE_JOINER = "_"
DEFAULT_MAX_TOKENS = 256

# Placeholder for maths inside the text; survives lower-casing and tokenising as one word token.
_EQN_PLACEHOLDER = " eqnplaceholderxq "
_TOKEN_RE = re.compile(r"\w+(?:['\-]\w+)*")
_CLOSERS = {"(": "\\)", "[": "\\]"}


def replace_math(text: str, placeholder: str = _EQN_PLACEHOLDER) -> str:
    """Return ``text`` with every LaTeX maths span replaced by ``placeholder``.

    A hand-written scanner rather than one regex, so that escaped dollars (``\\$5``) stay literal, a
    ``$`` inside braces (``$a \\text{ if $b$ }$``) does not close the span, and an unmatched opener is
    kept as plain text instead of swallowing the rest of the abstract.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "$":  # escaped dollar: literal
                out.append("$")
                i += 2
                continue
            if nxt in _CLOSERS:
                end = text.find(_CLOSERS[nxt], i + 2)
                if end != -1:
                    out.append(placeholder)
                    i = end + 2
                    continue
            out.append(ch)
            i += 1
            continue
        if ch == "$":
            display = text.startswith("$$", i)
            end = _find_dollar_close(text, i + (2 if display else 1), display)
            if end != -1:
                out.append(placeholder)
                i = end + (2 if display else 1)
                continue
            out.append(ch)  # unmatched: literal dollar
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _find_dollar_close(text: str, start: int, display: bool) -> int:
    """Index of the ``$`` (or ``$$``) closing a maths span opened before ``start``, or -1."""
    depth = 0
    i, n = start, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2  # skip escaped character (\$, \{, \}, \\)
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        elif ch == "$" and depth == 0:
            if not display:
                return i if i > start else -1  # "$$" seen as inline would be empty: not maths
            if text.startswith("$$", i):
                return i
        i += 1
    return -1


def tokenize(text: str) -> list[str]:
    """Maths -> ``-EQN-``, NFKC, lower-case, word tokens (punctuation dropped)."""
    if not text:
        return []
    text = unicodedata.normalize("NFKC", replace_math(text)).lower()
    return [EQN if t == "eqnplaceholderxq" else t for t in _TOKEN_RE.findall(text)]


def merge_phrases(tokens: Sequence[str], phrases: frozenset[str] | set[str]) -> list[str]:
    """Greedily join adjacent tokens ``a b`` into ``a_b`` where ``a_b`` is a known phrase."""
    if not phrases:
        return list(tokens)
    out: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        if i + 1 < n:
            joined = tokens[i] + PHRASE_JOINER + tokens[i + 1]
            if joined in phrases:
                out.append(joined)
                i += 2
                continue
        out.append(tokens[i])
        i += 1
    return out


def preprocess(
    title: str,
    abstract: str,
    max_tokens: int | None = DEFAULT_MAX_TOKENS,
    phrases: frozenset[str] | set[str] = frozenset(),
) -> list[str]:
    """Tokens of one paper, framed by the four markers and capped at ``max_tokens`` (None: no cap)."""
    if title is None or abstract is None:
        raise ValueError("title and abstract must be strings (use '' for a missing one)")
    if not isinstance(title, str) or not isinstance(abstract, str):
        raise TypeError(f"title and abstract must be str, got {type(title).__name__}, {type(abstract).__name__}")
    t = merge_phrases(tokenize(title), phrases)
    a = merge_phrases(tokenize(abstract), phrases)
    if max_tokens is not None:
        if max_tokens < 6:
            raise ValueError("max_tokens must be at least 6 (four markers and some text)")
        room = max_tokens - 4
        t = t[: max(room // 2, room - len(a))]
        a = a[: room - len(t)]
    return [TITLE_START, *t, TITLE_END, ABSTRACT_START, *a, ABSTRACT_END]


def corpus_line(title: str, abstract: str, phrases: frozenset[str] | set[str] = frozenset()) -> str:
    """One whitespace-joined line for unsupervised word-vector training (no length cap)."""
    return " ".join(preprocess(title, abstract, None, phrases))
