"""Reference libraries read into papers to like: BibTeX, RIS or a plain list of arXiv ids and links, as bytes in,
entries out (an arXiv id when the entry names one, its title for matching otherwise); no chat, no database.

:func:`check_upload` refuses a file by its declared name, type and size before anyone downloads it;
:func:`parse_library` sniffs the bytes (a PDF, an image, an archive or other binary data is refused with a
message fit to show a user), decodes them (UTF-8, else Windows-1252), picks the format by content and parses
it with a maintained parser (bibtexparser v2 for BibTeX, rispy for RIS). Broken BibTeX is parsed as far as it
parses: every block that fails is reported (line and start), never fatal. An entry's arXiv id comes from its
``eprint`` (or Mendeley's ``arxivid``) field, an arxiv.org link, a DOI ``10.48550/arXiv.X`` or an
``arXiv:X`` mention in any field (note, journal, howpublished, ...).
Entries without an id are matched by title in the store (``recommender.store.library``).
"""
from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from recommender.ids import InvalidArxivId, parse_arxiv_id

log = logging.getLogger(__name__)

MAX_BYTES = 2 * 1024 * 1024
MAX_ENTRIES = 2000
SUFFIXES = (".bib", ".bibtex", ".ris", ".txt", ".text", ".csv", ".list", "")

_BINARY = (  # magic numbers of what people send by mistake, and what each is
    (b"%PDF", "a PDF"), (b"\x89PNG", "an image"), (b"\xff\xd8\xff", "an image"), (b"GIF8", "an image"),
    (b"RIFF", "a media file"), (b"PK\x03\x04", "a ZIP archive or Office document"),
    (b"\x1f\x8b", "a compressed file"), (b"BZh", "a compressed file"), (b"7z\xbc\xaf", "a compressed file"),
    (b"\xd0\xcf\x11\xe0", "an Office document"), (b"SQLite format 3", "a database"),
)
_BIBTEX = re.compile(r"^\s*@\s*[A-Za-z]+\s*[{(]", re.M)
_BIB_ENTRY = re.compile(r"^\s*@\s*(?!comment\b|string\b|preamble\b)[A-Za-z]+\s*[{(]", re.M | re.I)
_RIS_TAG = re.compile(r"^TY  -", re.M)
_DOI = re.compile(r"10\.48550/arxiv\.([a-z\-]+(?:\.[a-z]{2})?/\d{7}|\d{4}\.\d{4,5})(v\d+)?", re.I)
_URL = re.compile(r"arxiv\.org/(?:abs|pdf|html)/([a-z\-]+(?:\.[a-z]{2})?/\d{7}|\d{4}\.\d{4,5})(v\d+)?", re.I)
_MENTION = re.compile(r"arxiv\s*:\s*([a-z\-]+(?:\.[a-z]{2})?/\d{7}|\d{4}\.\d{4,5})(v\d+)?", re.I)
_BARE = re.compile(r"^(?:[a-z\-]+(?:\.[A-Z]{2})?/\d{7}|\d{4}\.\d{4,5})(?:v\d+)?$")
_LATEX_CMD = re.compile(r"\\[A-Za-z]+\*?|\\.")


class LibraryError(ValueError):
    """A file that cannot be imported at all; the message says why and what to send instead."""


@dataclass(frozen=True)
class LibraryEntry:
    """One reference: where it is in the file (a citation key or ``line N``), its arXiv id if it names one,
    and its title as written ("" when it has none): LaTeX and all, as arXiv's own titles are stored, so both
    are normalised alike when matched (:func:`display_title` shows it as text)."""

    label: str
    arxiv_id: str | None
    title: str = ""


@dataclass
class Library:
    format: str  # "bibtex", "ris" or "ids"
    entries: list[LibraryEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # parts that did not parse, described briefly


def check_upload(filename: str, size: int | None, mime_type: str | None = None) -> None:
    """Refuse an upload from what it declares, before downloading it: over :data:`MAX_BYTES`, or named or typed
    as something that is no library (a PDF, an image, an office document)."""
    name = (filename or "").strip()
    lower = name.lower()
    mime = (mime_type or "").lower()
    if size is not None and size > MAX_BYTES:
        raise LibraryError(f"That file is {size / 1e6:.1f} MB; I read library files up to {MAX_BYTES // 2**20} MB. "
                           "Export fewer references (a collection), or split the file.")
    if mime == "application/pdf" or lower.endswith(".pdf"):
        raise LibraryError("That is a PDF. Send your library as a BibTeX (.bib) or RIS (.ris) export, or a "
                           "text file of arXiv ids or links.")
    if mime.startswith(("image/", "video/", "audio/")):
        raise LibraryError("That is not a library file. Send a BibTeX (.bib) or RIS (.ris) export, or a text "
                           "file of arXiv ids or links.")
    suffix = "." + lower.rsplit(".", 1)[1] if "." in lower else ""
    if suffix not in SUFFIXES:
        raise LibraryError(f"I can't read {suffix} files. Send a BibTeX (.bib) or RIS (.ris) export, or a text "
                           "file (.txt) of arXiv ids or links.")


def _decode(data: bytes) -> str:
    for magic, what in _BINARY:
        if data.startswith(magic):
            raise LibraryError(f"That file is {what}, not a library. Send a BibTeX (.bib) or RIS (.ris) export, "
                               "or a text file of arXiv ids or links.")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a byte-order mark (some Windows exports)
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    if b"\x00" in data[:8192]:
        raise LibraryError("That file is binary, not text. Send a BibTeX (.bib) or RIS (.ris) export, or a text "
                           "file of arXiv ids or links.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    controls = sum(1 for ch in text[:8192] if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f")
    if controls > 8:
        raise LibraryError("That file is binary, not text. Send a BibTeX (.bib) or RIS (.ris) export, or a text "
                           "file of arXiv ids or links.")
    return text


def arxiv_id_in(values: Iterable[str]) -> str | None:
    """The first arXiv id that ``values`` name (a DOI 10.48550/arXiv.X, an arxiv.org link or ``arXiv:X``)."""
    for value in values:
        text = value.replace("{", "").replace("}", "")
        for pattern in (_DOI, _URL, _MENTION):
            for m in pattern.finditer(text):
                try:
                    return parse_arxiv_id(m[1]).id
                except InvalidArxivId:
                    continue
    return None


def _id_field(value: str) -> str | None:
    """An ``eprint``-like field: the id itself (``2101.00001``, ``hep-th/9901002``, ``arXiv:2101.00001v2``)."""
    v = value.replace("{", "").replace("}", "").strip()
    v = re.sub(r"^arxiv\s*:\s*", "", v, flags=re.I)
    if not _BARE.match(v):
        return None
    try:
        return parse_arxiv_id(v).id
    except InvalidArxivId:
        return None


def _one_line(title: str) -> str:
    return " ".join(str(title or "").split())


def display_title(title: str) -> str:
    """A title as plain text to show: LaTeX (accents, commands, math) decoded when there is any, braces gone."""
    t = title
    if "\\" in t or "$" in t:
        try:
            from pylatexenc.latex2text import LatexNodes2Text  # installed with bibtexparser v2
            t = LatexNodes2Text().latex_to_text(t)
        except Exception:  # noqa: BLE001  malformed LaTeX: drop the commands, keep the words
            t = _LATEX_CMD.sub(lambda m: "" if m[0][1:].isalpha() or m[0][1:] in "\"'`^~=." else m[0][1:], t)
    return " ".join(t.replace("{", "").replace("}", "").split())


def _count_problem(problems: list[str], text: str) -> None:
    problems.append(" ".join(text.split())[:80])


def _bibtex(text: str) -> Library:
    import bibtexparser

    n = len(_BIB_ENTRY.findall(text))
    if n > MAX_ENTRIES:
        raise LibraryError(f"That library has {n:,} entries; I import at most {MAX_ENTRIES:,} at a time. "
                           "Export a collection, or split the file.")
    # bibtexparser reports each broken block through logging too; we report them to the user ourselves
    logging.getLogger("bibtexparser").setLevel(logging.ERROR)
    logging.getLogger("pylatexenc").setLevel(logging.ERROR)  # a malformed title's macro is not worth a warning
    parsed = bibtexparser.parse_string(text)  # its LaTeX-decoding middleware takes ~6 ms an entry: titles only
    lib = Library("bibtex")
    for e in parsed.entries:
        fields = {k.lower(): str(f.value) for k, f in e.fields_dict.items()}
        pid = None
        prefix = (fields.get("archiveprefix") or fields.get("eprinttype") or "arxiv").lower()
        if "arxiv" in prefix:
            pid = _id_field(fields.get("eprint", ""))
        pid = pid or _id_field(fields.get("arxivid", "")) or arxiv_id_in(
            fields.get(k, "") for k in ("doi", "url", "eprint", "note", "howpublished", "journal", "arxivid",
                                        "booktitle", "annote", "pdf", "file", "abstract"))
        lib.entries.append(LibraryEntry(e.key, pid, _one_line(fields.get("title", ""))))
    for block in parsed.failed_blocks:
        start = getattr(block, "start_line", None)
        where = f"line {start + 1}" if isinstance(start, int) else "a block"
        _count_problem(lib.problems, f"{where}: {block.raw}")
    return lib


def _ris(text: str) -> Library:
    import rispy

    n = len(_RIS_TAG.findall(text))
    if n > MAX_ENTRIES:
        raise LibraryError(f"That library has {n:,} entries; I import at most {MAX_ENTRIES:,} at a time. "
                           "Export a collection, or split the file.")
    lib = Library("ris")
    try:
        records = rispy.loads(text, skip_unknown_tags=True)
    except Exception as exc:  # noqa: BLE001  rispy raises plain errors for malformed input
        raise LibraryError(f"That RIS file does not parse ({str(exc)[:80]}). Export it again, or send BibTeX.") \
            from None
    for k, rec in enumerate(records, 1):
        values: list[str] = []
        for v in rec.values():
            values.extend(v if isinstance(v, list) else [v])
        strings = [str(v) for v in values]
        title = str(rec.get("title") or rec.get("primary_title") or rec.get("translated_title") or "")
        pid = arxiv_id_in(strings)
        if pid is None:
            pid = next((p for s in strings if (p := _id_field(s))), None)
        lib.entries.append(LibraryEntry(str(rec.get("id") or f"entry {k}"), pid, _one_line(title)))
    if len(records) < n:
        _count_problem(lib.problems, f"{n - len(records)} entries without an end (ER) tag")
    return lib


def _ids(text: str) -> Library:
    lib = Library("ids")
    for k, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        tokens = [t.strip("<>()[]\"'.,;") for t in line.split()]
        found = False
        for t in tokens:
            pid = _id_field(t) or arxiv_id_in([t])
            if pid is not None:
                lib.entries.append(LibraryEntry(f"line {k}", pid))
                found = True
        if not found:
            lib.entries.append(LibraryEntry(f"line {k}", None, _one_line(line)[:300]))
        if len(lib.entries) > MAX_ENTRIES:
            raise LibraryError(f"That list has more than {MAX_ENTRIES:,} entries; I import at most "
                               f"{MAX_ENTRIES:,} at a time. Split it.")
    return lib


def parse_library(data: bytes, filename: str = "") -> Library:
    """The entries of a library file (BibTeX, RIS, or ids and links one or more a line); LibraryError for a file
    that is too big, binary, empty, or has more than :data:`MAX_ENTRIES` entries."""
    if len(data) > MAX_BYTES:
        raise LibraryError(f"That file is {len(data) / 1e6:.1f} MB; I read library files up to "
                           f"{MAX_BYTES // 2**20} MB. Export fewer references, or split the file.")
    text = _decode(data)
    if not text.strip():
        raise LibraryError("That file is empty. Export your library as BibTeX (.bib) or RIS (.ris).")
    name = filename.lower()
    if _BIBTEX.search(text) and not name.endswith(".ris"):
        lib = _bibtex(text)
    elif _RIS_TAG.search(text):
        lib = _ris(text)
    else:
        lib = _ids(text)
    if not lib.entries and not lib.problems:
        raise LibraryError("I found no references in that file. Send a BibTeX (.bib) or RIS (.ris) export, or a "
                           "text file of arXiv ids or links.")
    log.info("library %r: %s, %d entries, %d problems", filename, lib.format, len(lib.entries), len(lib.problems))
    return lib
