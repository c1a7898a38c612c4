"""The one reader of JSONL corpus files (ours and arXiv's Kaggle snapshot): stream records, count bad lines.

A file is gzip or plain (told apart by its magic bytes, not its name) and is read line by line, so memory
stays flat in the file size. :func:`iter_records` yields ``(line number, record)`` for every line that is a
JSON object and counts the others (bad JSON, a bare list or number) in a :class:`LineCount`, keeping a few
examples; a truncated or corrupt file raises :class:`CorpusFileError` instead of ending quietly. The
importer, training, the offline recommender evaluation and the benchmarks all read corpora through here.
"""
from __future__ import annotations

import gzip
import io
import json
import logging
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5


class CorpusFileError(RuntimeError):
    """The file cannot be read to the end (missing, truncated, corrupt)."""


class LineCounter(Protocol):
    """Where a reader counts lines: :class:`LineCount`, or an import report that also counts bad records."""

    read: int

    def skip(self, lineno: int, reason: str) -> None: ...


@dataclass
class LineCount:
    """Lines read (non-blank) and lines skipped, with up to ``MAX_EXAMPLES`` examples of why."""

    read: int = 0
    bad: int = 0
    examples: list[str] = field(default_factory=list)

    def skip(self, lineno: int, reason: str) -> None:
        self.bad += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"line {lineno}: {reason[:160]}")


class BadLine(ValueError):
    """A line that is not a JSON object, in a strict read (the message names file and line)."""


def iter_records(path: Path | str, count: LineCounter | None = None,
                 on_bytes: Callable[[int], None] | None = None,
                 strict: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, JSON object)`` for each good line of ``path``; bad lines are counted in ``count``
    (``strict``: the first bad line raises :class:`BadLine` instead, e.g. for a training corpus).

    ``on_bytes(n)`` is called now and then with the number of (compressed) bytes read since the last call,
    for a progress bar. Raises :class:`CorpusFileError` if the file is missing, truncated or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CorpusFileError(f"{path}: no such file")
    counter: LineCounter = count if count is not None else LineCount()

    def bad(lineno: int, reason: str) -> None:
        if strict:
            raise BadLine(f"{path}:{lineno}: {reason}")
        counter.skip(lineno, reason)
    last_pos = 0
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"  # gzip or plain, told by the magic bytes
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if gzipped else raw
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace")
        lineno = 0
        while True:
            try:
                line = text.readline()
            except (EOFError, OSError, zlib.error) as exc:
                raise CorpusFileError(
                    f"{path}: cannot read past line {lineno} ({type(exc).__name__}: {exc}); "
                    "the file is truncated or corrupt") from None
            if not line:
                break
            lineno += 1
            if on_bytes is not None and lineno % 2000 == 0:
                pos = raw.tell()
                on_bytes(pos - last_pos)
                last_pos = pos
            if not line.strip():
                continue
            counter.read += 1
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                bad(lineno, f"not JSON ({exc.msg})")
                continue
            except (ValueError, RecursionError) as exc:  # a number of over 4,300 digits; absurd nesting
                bad(lineno, f"unreadable JSON ({type(exc).__name__}: {exc})")
                continue
            if not isinstance(rec, dict):
                bad(lineno, f"not a JSON object but a {type(rec).__name__}")
                continue
            yield lineno, rec
        if on_bytes is not None:
            on_bytes(path.stat().st_size - last_pos)


def iter_dicts(path: Path | str, count: LineCount | None = None, strict: bool = False) -> Iterator[dict[str, Any]]:
    """The JSON objects of ``path`` (bad lines skipped and counted, logged once at the end; ``strict``: the
    first bad line raises :class:`BadLine`)."""
    count = count if count is not None else LineCount()
    yield from (rec for _, rec in iter_records(path, count, strict=strict))
    if count.bad:
        log.warning("%s: skipped %d bad line(s), e.g. %s", path, count.bad, "; ".join(count.examples[:3]))
