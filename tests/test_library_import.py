"""Onboarding from a reference library: real-looking Zotero, Mendeley and JabRef BibTeX, RIS, an id list and a
broken BibTeX file (all made of demo papers) parsed, matched by title against the real demo store, and
imported as likes through the terminal and through Telegram (real python-telegram-bot against the fake Bot API
server, the document downloaded with getFile; unknown ids fetched from a local arXiv API server)."""
from __future__ import annotations

import io
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.commands import Caller, Commands
from bot.console import Console
from bot.telegram import Runtime, running
from recommender.config import Settings
from recommender.sources.library import (
    MAX_BYTES,
    MAX_ENTRIES,
    LibraryError,
    check_upload,
    display_title,
    parse_library,
)
from recommender.store import Store
from recommender.store.library import normalise_title
from recommender.store.schema import MIGRATIONS, V_LIBRARY_GROUPS, migrate
from tests.support.bot_fixtures import (
    LATEST,
    KeywordClassifier,
    bot_settings,
    demo_runtime,
    hash_engine,
    run,
)
from tests.support.fake_telegram import FakeTelegram
from tests.support.local_server import LocalServer

LIB = Path(__file__).resolve().parent / "fixtures" / "library"
API = Path(__file__).resolve().parent / "fixtures" / "arxiv_api" / "id_2104.12255v1_s0_m100_6ae69987ffe1.body.xml"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64


def ids_of(name: str) -> list[str | None]:
    return [e.arxiv_id for e in parse_library((LIB / name).read_bytes(), name).entries]


# -- parsing ----------------------------------------------------------------------------------------------
def test_every_export_format_yields_its_arxiv_ids_and_titles() -> None:
    # Zotero: url, DOI 10.48550/arXiv.X, note "arXiv:X"; entries without one keep their title for matching
    assert ids_of("zotero.bib") == ["2606.30017", "2606.29579", None, None, "2104.12255", None]
    zotero = parse_library((LIB / "zotero.bib").read_bytes(), "zotero.bib")
    assert zotero.format == "bibtex" and not zotero.problems
    assert zotero.entries[2].title == \
        "Exploring the possibility of {TypiClust} for low-budget federated active learning"  # as written
    assert display_title(r"Schr\"{o}dinger's {BERT} for $\alpha$-decay") == "Schrödinger's BERT for α-decay"
    # Mendeley: arxivId / eprint + archivePrefix, and a journal field "arXiv:X"
    assert ids_of("mendeley.bib") == ["2606.27881", "2606.30107", "2503.22692"]
    # JabRef (biblatex): eprint + eprinttype, \url{...} in howpublished; a journal article without an id
    assert ids_of("jabref.bib") == ["2606.28900", "2606.30307", None]
    assert ids_of("library.ris") == ["2603.04488", None, None]
    cut = b"TY  - JOUR\nTI  - Complete\nUR  - https://arxiv.org/abs/2603.04488\nER  - \n\nTY  - JOUR\nTI  - Cut off\n"
    ris = parse_library(cut, "cut.ris")
    assert [e.arxiv_id for e in ris.entries] == ["2603.04488"] and ris.problems == ["1 entries without an end (ER) tag"]
    utf16 = (LIB / "mendeley.bib").read_text(encoding="utf-8").encode("utf-16")  # a Windows export, with a BOM
    assert [e.arxiv_id for e in parse_library(utf16, "mendeley.bib").entries] == ids_of("mendeley.bib")
    ids = parse_library((LIB / "ids.txt").read_bytes(), "ids.txt")
    assert ids.format == "ids"
    assert [e.arxiv_id for e in ids.entries if e.arxiv_id] == ["2606.30017", "2606.29579", "2606.27881",
                                                                "2606.30107", "2606.28900"]


def test_broken_bibtex_imports_what_parses_and_reports_the_rest() -> None:
    lib = parse_library((LIB / "broken.bib").read_bytes(), "broken.bib")
    assert [e.arxiv_id for e in lib.entries] == ["2606.30017", "2606.30107"]
    assert len(lib.problems) == 2
    assert lib.problems[0].startswith("line 7: @article{missing_brace") and "no_comma" in lib.problems[1]


@pytest.mark.parametrize(("data", "name", "says"), [
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "paper.bib", "a PDF"),
    (PNG, "library.bib", "an image"),
    (b"PK\x03\x04\x14\x00\x06\x00", "library.docx.bib", "ZIP archive"),
    (zlib.compress(b"x" * 1000) + b"\x00\x01\x02", "library.txt", "binary"),
    (b"   \n\n", "empty.bib", "empty"),
    (b"@article{a, title={x}}\n" * (MAX_ENTRIES + 1), "big.bib", f"at most {MAX_ENTRIES:,}"),
    (b"x" * (MAX_BYTES + 1), "huge.txt", "up to 2 MB"),
    (b"Dear Ada,\nthanks for the talk yesterday.\n", "letter.txt", None),
])
def test_what_is_not_a_library_gets_a_clear_error(data: bytes, name: str, says: str | None) -> None:
    if says is None:  # text without ids: parsed as lines to match by title, nothing refused
        assert all(e.arxiv_id is None for e in parse_library(data, name).entries)
        return
    with pytest.raises(LibraryError, match=says):
        parse_library(data, name)


def test_uploads_are_refused_by_what_they_declare_before_download() -> None:
    check_upload("My Library.bib", 20_000, "application/x-bibtex")
    check_upload("export.ris", None, None)
    for name, size, mime, says in [("library.bib", 3 * 2**20, None, "3.1 MB"), ("paper.pdf", 10, None, "PDF"),
                                   ("x.bib", 10, "application/pdf", "PDF"), ("pic.jpg", 10, "image/jpeg", "not a"),
                                   ("thesis.docx", 10, None, ".docx")]:
        with pytest.raises(LibraryError, match=says):
            check_upload(name, size, mime)


# -- title matching -----------------------------------------------------------------------------------------
def test_titles_match_exactly_after_normalisation_or_closely_above_a_strict_threshold(demo_store: Store) -> None:
    store = demo_store
    assert normalise_title(r"{BERT}: Pre-training of {D}eep \emph{Bidirectional} Transf\"ormers") == \
        "bert pre training of deep bidirectional transformers"
    assert normalise_title("Schrödinger’s  Café") == normalise_title("schrodinger's cafe")
    exact = "exploring the POSSIBILITY of {TypiClust} for low-budget, federated active-learning!"
    close = "Seismic full-waveform inversion via a physics-guided Fourier representation neural networks"
    near_miss = "Monte Carlo Energy Aggregation for Mobile 3D Gaussian Splatting on Phones"
    different = "The Art of Computer Programming"
    got = store.match_titles([exact, close, near_miss, different, "", "a"])
    assert got[exact].paper_id == "2505.19404" and got[exact].exact
    assert got[close].paper_id == "2606.30126" and not got[close].exact and got[close].similarity >= 0.95
    assert near_miss not in got and different not in got and "" not in got
    shuffled = "Federated active learning for low-budget TypiClust: exploring the possibility"
    assert shuffled not in store.match_titles([shuffled])  # the same words are not the same title


def test_a_database_of_the_previous_version_keeps_its_rows(tmp_path: Path) -> None:
    """The migration adding group chats and quick checks keeps every row; title matching needs no new table."""
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    before = MIGRATIONS.index(V_LIBRARY_GROUPS)
    assert migrate(conn, MIGRATIONS[:before]) == before
    conn.executescript("""
        INSERT INTO papers (id, title, content_hash) VALUES ('2606.30126',
            'Seismic full waveform inversion via a physics-guided Fourier representation neural network', 'h');
        INSERT INTO users (id, chat_id, name) VALUES (7, 7, 'Ada'), (-1001, -1001, 'Reading group');
        INSERT INTO feedback (user_id, paper_id, value) VALUES (7, '2606.30126', 1);
        INSERT INTO digests (user_id, announced, status) VALUES (7, '2026-06-30', 'sent');
    """)
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.liked_ids(7) == ["2606.30126"] and store.get_user(-1001).name == "Reading group"
        assert store.last_digest_day(7) == "2026-06-30"
        assert not store.is_group(-1001)
        store.add_group(-1001, "Reading group")
        assert store.is_group(-1001) and store.claim_quickcheck(7, "2026-06-30", ["2606.30126"])
        title = "Seismic full-waveform inversion via a physics guided Fourier representation neural network"
        assert store.match_titles([title])[title].paper_id == "2606.30126"


# -- the terminal ---------------------------------------------------------------------------------------------
def test_the_terminal_imports_a_library_by_a_path_relative_to_the_current_directory(
        settings: Settings, demo_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "papers"
    work.mkdir()
    (work / "library.bib").write_bytes((LIB / "library.bib").read_bytes())
    (work / "paper.pdf").write_bytes(b"%PDF-1.5\n...")
    monkeypatch.chdir(work)
    store = demo_store
    out = io.StringIO()
    commands = Commands(settings, store, engine_factory=lambda: hash_engine(settings, store),
                        classifier_factory=KeywordClassifier)
    script = ["/start", "/follow cs.LG", "/like 2606.28354", "/import library.bib", "/likes", "/digest",
              "/import paper.pdf", "/import nowhere.bib", "/import"]
    Console(commands, out=out, echo=True).run(io.StringIO("\n".join(script) + "\n"))
    text = out.getvalue()
    assert "Imported library.bib (BibTeX, 4 entries): liked 2 papers (1 liked before)" in text
    assert "1 matched by title" in text and "Not matched (1)" in text and "knuth_art_1997: The Art of" in text
    assert "Your likes (3)" in text and "2505.19404" in text and "2606.29579" in text
    assert "Your arXiv digest for" in text or "Nothing in arXiv's announcement" in text
    assert "That is a PDF" in text
    assert f"There is no file {work / 'nowhere.bib'}" in text
    assert "Give the path of a BibTeX" in text and "Traceback" not in text
    assert set(store.liked_ids(1)) == {"2606.28354", "2606.29579", "2505.19404"}


def test_in_telegram_a_path_is_never_read(settings: Settings, demo_store: Store) -> None:
    commands = Commands(settings, demo_store, engine_factory=lambda: hash_engine(settings, demo_store),
                        classifier_factory=KeywordClassifier)
    [reply] = commands.handle(Caller(5, 5), f"/import {LIB / 'library.bib'}")
    assert "attach the file" in reply.text.plain and not demo_store.liked_ids(5)


# -- Telegram -----------------------------------------------------------------------------------------------
@pytest.fixture
def lrt(tmp_path: Path, fake: FakeTelegram, demo_home: Path, server: LocalServer) -> Iterator[Runtime]:
    """A bot runtime over the demo papers whose arXiv look-ups go to the local server."""
    yield from demo_runtime(bot_settings(tmp_path, fake.base_url, api_url=f"{server.url}/api/query"), demo_home)


def test_a_library_sent_as_a_document_is_liked_and_unknown_ids_fetched(lrt: Runtime, fake: FakeTelegram,
                                                                       server: LocalServer) -> None:
    server.route("/api/query", (200, API.read_bytes()))
    uid = 4101

    async def go() -> None:
        async with running(lrt):
            fake.send_document(uid, "My Library.bib", (LIB / "zotero.bib").read_bytes(), "application/x-bibtex")
            first, later = await fake.replies(uid, 2)  # at once what is under way, then the report
            assert first.text == ("Importing My Library.bib (BibTeX, 6 entries): fetching 1 papers from arXiv …")
            assert later.text.startswith("Imported My Library.bib (BibTeX, 6 entries): liked 5 papers.")
            assert "2 matched by title (1 closely, not exactly)" in later.text
            assert "Not matched (1)" in later.text and "knuth_art_1997" in later.text
            fake.send_document(uid, "broken.bib", (LIB / "broken.bib").read_bytes())
            broken = (await fake.replies(uid, 3))[-1]
            assert "liked 1 papers (1 liked before)" in broken.text
            assert "Could not read 2 part(s)" in broken.text and "line 7: @article{missing_brace" in broken.text
        assert not [e for e in fake.errors if e[1] == 400], fake.errors

    run(go())
    assert set(lrt.store.liked_ids(uid)) == {"2606.30017", "2606.29579", "2505.19404", "2606.30126", "2104.12255",
                                              "2606.30107"}
    assert len(fake.downloads) == 2


def test_documents_that_are_no_library_are_refused_and_big_ones_never_downloaded(lrt: Runtime,
                                                                                fake: FakeTelegram) -> None:
    uid = 4102

    async def go() -> None:
        async with running(lrt):
            fake.send_document(uid, "paper.pdf", b"%PDF-1.7 ...", "application/pdf")
            fake.send_document(uid, "library.bib", b"@misc{a, title={x}}\n", declared_size=3 * 2**20)
            fake.send_document(uid, "library.bib", PNG)  # named like a library, an image inside
            fake.send_document(uid, "library.bib", b"")
            fake.send_text(uid, "/import library.bib")
            texts = [m.text for m in await fake.replies(uid, 5)]
            assert "That is a PDF" in texts[0]
            assert "3.1 MB" in texts[1] and "up to 2 MB" in texts[1]
            assert "That file is an image" in texts[2]
            assert "empty" in texts[3]
            assert "Send me your library as a file" in texts[4] and "attach the file" in texts[4]
        assert not [e for e in fake.errors if e[1] == 400], fake.errors

    run(go())
    assert len(fake.downloads) == 2  # the PDF and the 3 MB file were refused from what they declared
    assert lrt.store.liked_ids(uid) == []


def test_a_big_library_is_matched_off_the_reply_path(settings: Settings, demo_store: Store, tmp_path: Path) -> None:
    store = demo_store
    papers = store.get_papers(store.announced_ids(LATEST)[:60])
    bib = "".join(f"@article{{k{i}, title = {{{p.title}}}, journal = {{J}}, year = {{2026}}}}\n"
                  for i, p in enumerate(papers.values()))
    (tmp_path / "big.bib").write_text(bib, encoding="utf-8")
    commands = Commands(settings, store, engine_factory=lambda: hash_engine(settings, store),
                        classifier_factory=KeywordClassifier)
    commands.local_files = True
    [reply] = commands.handle(Caller(6, 6), f"/import {tmp_path / 'big.bib'}")
    assert reply.text.plain == "Importing big.bib (BibTeX, 60 entries): matching 60 titles …"
    assert reply.followup is not None and not store.liked_ids(6)  # nothing matched on the reply path
    [report] = reply.followup()
    assert report.text.plain.startswith("Imported big.bib (BibTeX, 60 entries): liked 60 papers.")
    assert set(store.liked_ids(6)) == set(papers)
