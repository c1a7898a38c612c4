"""Onboarding from a reference library: a BibTeX or RIS export or a list of arXiv ids becomes likes.

In Telegram the file arrives as a document (:meth:`ImportCommands.check_document` refuses it by its declared
name, type and size before it is downloaded; :meth:`ImportCommands.import_document` imports the bytes); in the
terminal ``/import PATH`` reads a file, a relative path against the current directory. Either way
:meth:`ImportCommands.import_library` parses it (``recommender.sources.library``), likes every entry with an
arXiv id and matches the others by title against the store (exact after normalisation, or a strict close
match). A small library of stored papers is answered at once with what was liked and what could not be
matched; a larger one, or one naming papers the store lacks, gets a short "importing ..." reply whose
``followup`` (off the reply path, as ``/like`` fetches) matches, fetches from arXiv, likes and reports.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from recommender.sources.library import (
    MAX_BYTES,
    Library,
    LibraryEntry,
    LibraryError,
    check_upload,
    display_title,
    parse_library,
)
from recommender.store import User

from . import render
from .cmd_base import Caller, UserError
from .cmd_papers import PaperCommands
from .reply import Reply
from .rich import Rich

log = logging.getLogger(__name__)

SHOWN_UNMATCHED = 10
SHOWN_PROBLEMS = 3
INLINE_TITLES = 50  # more titles than this are matched off the reply path, in the reply's followup
FORMATS = {"bibtex": "BibTeX", "ris": "RIS", "ids": "a list of ids"}
HOW_TO_SEND = ("Send me your library as a file: a BibTeX (.bib) or RIS (.ris) export from Zotero, Mendeley or "
               "JabRef, or a text file of arXiv ids or links, one or more a line. I like every paper in it.")


class ImportCommands(PaperCommands):
    local_files = False  # True in the terminal: /import PATH reads the local file system (never in Telegram)

    def cmd_import(self, user: User, args: str) -> Reply | list[Reply]:
        name = args.strip().strip("\"'")
        if not self.local_files:
            return Reply.plain(HOW_TO_SEND + (" (In this chat a path means nothing to me: attach the file.)"
                                              if name else ""))
        if not name:
            raise UserError("Give the path of a BibTeX, RIS or id-list file, e.g. /import library.bib")
        path = Path(name).expanduser()
        path = path if path.is_absolute() else Path.cwd() / path
        if not path.is_file():
            raise UserError(f"There is no file {render.clean(str(path), 120)}. Give the path of a BibTeX, RIS "
                            "or id-list file, e.g. /import ~/Downloads/library.bib")
        try:
            check_upload(path.name, path.stat().st_size)
            with path.open("rb") as f:
                data = f.read(MAX_BYTES + 1)
        except LibraryError as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            raise UserError(f"I could not read {render.clean(path.name, 80)}: {exc.strerror or exc}.") from None
        return self.import_library(user, data, path.name)

    def check_document(self, filename: str, size: int | None, mime_type: str | None) -> Reply | None:
        """A refusal for a document that cannot be a library (too big, a PDF, an image), judged from what it
        declares, before it is downloaded; None if it is worth downloading."""
        try:
            check_upload(filename, size, mime_type)
        except LibraryError as exc:
            return Reply.plain(str(exc))
        return None

    def import_document(self, caller: Caller, filename: str, data: bytes) -> list[Reply]:
        """Import a document a user sent (Telegram); errors are answered, never raised."""
        try:
            user = self.user(caller)
            if caller.group:
                return [Reply.plain("Send library files in your private chat with me; in a group, admins shape "
                                    "the group's digest with /follow and the 👍/👎 buttons.")]
            out = self.import_library(user, data, filename)
            return out if isinstance(out, list) else [out]
        except UserError as exc:
            return [Reply.plain(str(exc))]
        except Exception:
            log.exception("library import failed: user=%s file=%r", caller.user_id, filename[:80])
            return [Reply.plain("Sorry, something went wrong on my side while importing that file. It has been "
                                "logged; please try again in a moment.")]

    def import_library(self, user: User, data: bytes, filename: str) -> Reply:
        """Parse a library and like its papers. A small one whose papers are all stored is answered at once;
        otherwise the reply says what is under way and its ``followup`` (off the reply path) matches the titles,
        fetches the papers the store lacks from arXiv, likes them and reports."""
        try:
            lib = parse_library(data, filename)
        except LibraryError as exc:
            raise UserError(str(exc)) from None
        ids = list(dict.fromkeys(e.arxiv_id for e in lib.entries if e.arxiv_id))
        titles = [e.title for e in lib.entries if not e.arxiv_id and e.title]
        lacking = [i for i in ids if i not in self.store.get_papers(ids)]
        shown = render.clean(filename, 60) or "your library"
        if not lacking and len(titles) <= INLINE_TITLES:
            return Reply(self._imported(user, lib, shown))
        work = ([f"matching {len(titles):,} titles"] if len(titles) > INLINE_TITLES else []) + \
            ([f"fetching {len(lacking):,} papers from arXiv"] if lacking else [])
        note = f"Importing {shown} ({FORMATS[lib.format]}, {len(lib.entries):,} entries): {' and '.join(work)} …"

        def followup() -> list[Reply]:
            try:
                return [Reply(self._imported(user, lib, shown))]
            except Exception:
                log.exception("library import of %d entries failed: user=%s", len(lib.entries), user.id)
                return [Reply.plain("Sorry, something went wrong on my side while importing that file. It has "
                                    "been logged; send it again in a moment.")]
        return Reply.plain(note, followup=followup)

    def _imported(self, user: User, lib: Library, shown: str) -> Rich:
        """Match, fetch and like the library's papers; the report of what was liked and what was not."""
        ids = [e.arxiv_id for e in lib.entries if e.arxiv_id]
        titled = [e for e in lib.entries if not e.arxiv_id and e.title]
        matches = self.store.match_titles([e.title for e in titled]) if titled else {}
        by_title = [matches[e.title].paper_id for e in titled if e.title in matches]
        unmatched = [e for e in lib.entries if not e.arxiv_id and e.title not in matches]
        wanted = list(dict.fromkeys([*ids, *by_title]))
        found, missing = self._papers(wanted)  # fetches what the store lacks from arXiv, as /like does
        new = [i for i in wanted if i in found and self.store.set_feedback(user.id, i, 1)]
        before = len(found) - len(new)
        out = Rich().b(f"Imported {shown}").text(f" ({FORMATS[lib.format]}, {len(lib.entries):,} entries): ")
        out.text(f"liked {len(new):,} papers" + (f" ({before:,} liked before)" if before else "") + ".").nl()
        fuzzy = sum(1 for e in titled if e.title in matches and not matches[e.title].exact)
        if by_title:
            out.text(f"{len(by_title):,} matched by title" + (f" ({fuzzy:,} closely, not exactly)" if fuzzy else "")
                     + ".").nl()
        if missing:
            more = f" and {len(missing) - SHOWN_UNMATCHED:,} more" if len(missing) > SHOWN_UNMATCHED else ""
            out.text(f"Not found on arXiv (check the ids, or send the file again later if arXiv is unreachable): "
                     f"{', '.join(missing[:SHOWN_UNMATCHED])}{more}.").nl()
        self._describe_unmatched(out, unmatched, lib)
        out.nl().text("See them with ").code("/likes").text("; your next digests learn from them.")
        return out

    @staticmethod
    def _describe_unmatched(out: Rich, unmatched: Sequence[LibraryEntry], lib: Library) -> None:
        if unmatched:
            out.nl().b(f"Not matched ({len(unmatched):,}):").text(" no arXiv id, and no paper I hold has that "
                                                                   "title").nl()
            for e in unmatched[:SHOWN_UNMATCHED]:
                title = render.clean(display_title(e.title), 80) or "(no title)"
                out.text(f"• {render.clean(e.label, 40)}: {title}").nl()
            if len(unmatched) > SHOWN_UNMATCHED:
                out.text(f"… and {len(unmatched) - SHOWN_UNMATCHED:,} more").nl()
        if lib.problems:
            out.nl().b(f"Could not read {len(lib.problems):,} part(s) of the file").text(
                " (the rest was imported):").nl()
            for p in lib.problems[:SHOWN_PROBLEMS]:
                out.text("• " + render.clean(p, 90)).nl()
            if len(lib.problems) > SHOWN_PROBLEMS:
                out.text(f"… and {len(lib.problems) - SHOWN_PROBLEMS:,} more").nl()
