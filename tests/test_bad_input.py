"""Bad data and bad input cannot stop or mislead the bot: real demo and snapshot records made bad, imported
through the command line; Unicode digits, forged buttons, invisible interests and group chats through the
commands; a lone "²" in the terminal."""
from __future__ import annotations

import dataclasses
import gzip
import io
import json
import logging
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import buttons
from bot.commands import Caller, Commands
from bot.console import Console, Warmup, quiet_logging
from bot.schedule import due_now
from recommender.cli.main import main
from recommender.config import Settings
from recommender.days import BadDay, announcement_day
from recommender.engine.core import Engine
from recommender.sources.corpus import BadLine, iter_dicts
from recommender.sources.importer import import_file
from recommender.store import Store
from tests.support.bot_fixtures import LATEST, KeywordClassifier, hash_engine

from .conftest import DEMO, FIXTURES

SNAPSHOT = FIXTURES / "kaggle_snapshot_sample.jsonl"


def demo_records(n: int = 40) -> list[dict[str, Any]]:
    with gzip.open(DEMO, "rt", encoding="utf-8") as f:
        return [json.loads(next(f)) for _ in range(n)]


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def import_json(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["import", str(path), "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


# -- dates ------------------------------------------------------------------------------------------------
def test_announcement_days_must_be_real_and_not_in_the_future() -> None:
    today = date(2026, 7, 1)
    assert announcement_day("2026-06-30", today) == "2026-06-30"
    assert announcement_day("2026-07-02", today) == "2026-07-02"  # tomorrow: already announced in Asia
    for bad in ["9999-99-99", "2099-01-01", "2026-07-03", "1990-12-31", "2026-02-30", "2026-6-30", "２０２６-06-30",
                "2026-06-30T00:00", 20260630, None, ["2026-06-30"]]:
        with pytest.raises(BadDay):
            announcement_day(bad, today)


def test_bad_announcement_days_are_skipped_and_today_stays_real(cli_env: Settings, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    records = demo_records()
    real_latest = max(r["announced"] for r in records if r["announced"])
    bad_days = ["9999-99-99", "2099-01-01", "1990-05-01", "2026-02-30",
                (datetime.now(UTC).date() + timedelta(days=2)).isoformat()]
    for r, day in zip(records, bad_days, strict=False):
        r["announced"] = day
    report = import_json(write_jsonl(tmp_path / "bad_days.jsonl", records), capsys)
    assert report["bad_lines"] == len(bad_days) and report["bad_fields"] == {"announced": len(bad_days)}
    assert report["inserted"] == len(records) - len(bad_days)
    assert any("line 1: announced" in e and "9999-99-99" in e for e in report["bad_examples"])
    assert any("line 2: announced" in e and "future" in e for e in report["bad_examples"])
    with Store(cli_env.db_path) as store:
        assert store.latest_announcement() == real_latest
        assert not store.has_paper(records[0]["id"]) and store.has_paper(records[-1]["id"])


def test_days_stored_before_validation_never_become_today(demo_store: Store, settings: Settings) -> None:
    """A database written by an older version may hold bad days: reads ignore them, writes refuse them."""
    store = demo_store
    pid = store.announced_ids(LATEST)[0]
    for day in ("9999-99-99", "2099-01-01", "2026-13-45", "2026-02-30"):
        store.conn.execute("INSERT INTO announcements (paper_id, announced, announce_type) VALUES (?, ?, 'new')",
                           (pid, day))
    assert store.latest_announcement() == LATEST
    assert store.stats()["last_announced"] == LATEST
    # the delivery run's scheduling parses the day: it must not raise "month must be in 1..12"
    store.ensure_user(5, chat_id=5)
    store.set_user_categories(5, ["cs.LG"])
    due = due_now(store, datetime.now(UTC), force=True)
    assert [(d.user.id, d.day) for d in due] == [(5, LATEST)]
    commands = Commands(settings, store, engine_factory=lambda: hash_engine(settings, store),
                        classifier_factory=KeywordClassifier)
    text = commands.handle(Caller(5, 5), "/digest")[0].text.plain
    assert f"digest for {LATEST}" in text
    # writes: a bad day is dropped with a warning, the paper is kept
    paper = store.get_paper(pid)
    assert paper is not None
    fresh = dataclasses.replace(paper, id="2607.00001", announced="2099-01-01", announce_type="new")
    store.upsert_papers([fresh])
    got = store.get_paper("2607.00001")
    assert got is not None and got.announced is None
    assert store.record_announcements([(pid, "9999-99-99", "new")]) == 0
    store.record_feed_fetch(["cs.LG"], "2099-01-01", 3)
    last = store.last_feed_fetch()
    assert last is not None and last["announced"] is None
    assert store.latest_announcement() == LATEST


# -- wrongly typed fields ----------------------------------------------------------------------------------
CORPUS_BAD_FIELDS: list[tuple[str, Any]] = [
    ("comment", {"a": 1}), ("published", ["x"]), ("updated", "yesterday"), ("version", 10**30),
    ("version", 1e308), ("version", True), ("title", None), ("title", 42), ("title", "   "), ("abstract", ["x"]),
    ("authors", [1, 2]), ("authors", {"name": "x"}), ("categories", [5]), ("categories", "not a list!"),
    ("categories", ["cs.LG; DROP TABLE papers"]), ("primary_category", 3.5), ("id", 1706.03762), ("id", None),
    ("id", "banana"), ("doi", 10), ("journal_ref", False), ("abstract", "\ud800 broken"),
    ("title", "x" * 5000), ("announced", 20260630),
]


def test_every_wrongly_typed_corpus_field_skips_only_its_record(cli_env: Settings, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    good = demo_records(60)
    bad: list[dict[str, Any]] = []
    for (key, value), rec in zip(CORPUS_BAD_FIELDS, good, strict=False):
        r = dict(rec, id=f"2609.{len(bad):05d}")
        r[key] = value
        bad.append(r)
    lines: list[Any] = [*good[len(bad):], *bad, "[1, 2]", "{not json", '{"id": "2501.00001", "version": 1'
                        + "0" * 5000 + "}"]
    report = import_json(write_jsonl(tmp_path / "typed.jsonl", lines), capsys)
    assert report["bad_lines"] == len(bad) + 3, report
    assert report["inserted"] == len(good) - len(bad)
    assert report["bad_fields"]["json"] == 3 and report["bad_fields"]["version"] == 3
    assert len(report["bad_examples"]) == 5 and all(e.startswith("line ") for e in report["bad_examples"])
    with Store(cli_env.db_path) as store:
        assert store.count_papers() == len(good) - len(bad)
        assert not any(store.has_paper(f"2609.{k:05d}") for k in range(len(bad)))


SNAPSHOT_BAD_FIELDS: list[tuple[str, Any]] = [
    ("comments", {"a": 1}), ("versions", ["x"]), ("versions", [{"version": "v1", "created": "not a date"}]),
    ("versions", [{"version": "v99999999999999999999", "created": "Mon, 2 Apr 2007 19:18:42 GMT"}]),
    ("versions", [{"version": "v1", "created": "Mon, 2 Apr 2099 19:18:42 GMT"}]), ("update_date", "9999-99-99"),
    ("authors_parsed", [[1, 2]]), ("authors_parsed", "Smith"), ("categories", "hep-ph ²"), ("journal-ref", [1]),
    ("title", {"t": 1}), ("doi", 3),
]


def test_every_wrongly_typed_snapshot_field_skips_only_its_record(store: Store, tmp_path: Path) -> None:
    good = [json.loads(line) for line in SNAPSHOT.read_text(encoding="utf-8").splitlines()[:40]]
    lines = []
    for k, rec in enumerate(good):
        if k < len(SNAPSHOT_BAD_FIELDS):
            key, value = SNAPSHOT_BAD_FIELDS[k]
            rec = dict(rec)
            rec[key] = value
        lines.append(rec)
    report, stats = import_file(store, write_jsonl(tmp_path / "snap.jsonl", lines))
    assert report.bad_lines == len(SNAPSHOT_BAD_FIELDS), report.to_dict()
    assert stats["inserted"] == len(good) - len(SNAPSHOT_BAD_FIELDS)
    assert not store.has_paper(good[0]["id"]) and store.has_paper(good[-1]["id"])


def test_one_corpus_reader_counts_bad_lines_or_names_the_first(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "c.jsonl", [{"id": "a"}, "nope", "[1]", {"id": "b"}, ""])
    assert [d["id"] for d in iter_dicts(f)] == ["a", "b"]
    gz = tmp_path / "c.jsonl.gz"
    gz.write_bytes(gzip.compress(f.read_bytes()))
    assert [d["id"] for d in iter_dicts(gz)] == ["a", "b"]
    with pytest.raises(BadLine, match="c.jsonl:2"):
        list(iter_dicts(f, strict=True))


# -- numbers and text users type --------------------------------------------------------------------------
@pytest.fixture
def commands(settings: Settings, demo_store: Store) -> Commands:
    return Commands(settings, demo_store, engine_factory=lambda: hash_engine(settings, demo_store),
                    classifier_factory=KeywordClassifier)


ME = Caller(7, 7)


def answer(commands: Commands, text: str, caller: Caller = ME) -> str:
    replies = commands.handle(caller, text)
    assert replies
    return "\n".join(r.text.plain for r in replies)


def test_unicode_digits_and_huge_numbers_get_helpful_answers(commands: Commands,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    store = commands.store
    answer(commands, "/follow cs.LG")
    for pid in store.announced_ids(LATEST)[:12]:
        store.set_feedback(7, pid, 1)
    before = store.get_user(7)
    caplog.set_level(logging.ERROR)
    cases = {
        "/likes ²": "The page is a whole number from 1",
        "/likes ٣": "The page is a whole number",
        "/likes 99999999999999999999": "The page is a whole number",
        "/settings size ²": "The digest size (papers) is a whole number from 1 to 20",
        "/settings size 00019999": "from 1 to 20",
        "/settings size 0": "from 1 to 20",
        "/settings size 21": "from 1 to 20",
        "/settings hour ٣": "The hour (in your timezone) is a whole number from 0 to 23",
        "/settings hour 24": "from 0 to 23",
        "/settings minscore ٠.٥": "between 0 and 1",
        "/settings minscore nan": "between 0 and 1",
        "/settings minscore 1e9": "between 0 and 1",
        "/similar dark matter 99": "The number of papers is a whole number from 1 to 20",
        "/similar dark matter 0": "from 1 to 20",
    }
    for text, expected in cases.items():
        assert expected in answer(commands, text), text
    assert store.get_user(7) == before  # nothing was saved
    assert "Close to “dark matter halos ²”" in answer(commands, "/similar dark matter halos ²")
    assert "page 2 of 2" in answer(commands, "/likes 0002")
    assert "up to 7 papers" in answer(commands, "/settings size 7")
    assert "Digest at 09:00" in answer(commands, "/settings hour 9:00")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # answered, not crashed


def test_sizes_saved_before_the_bounds_are_read_back_within_them(commands: Commands) -> None:
    store = commands.store
    answer(commands, "/follow cs.LG")
    store.update_user(7, digest_size=19999, digest_hour=99, min_score=-3.0)  # as an older version saved them
    user = store.get_user(7)
    assert user is not None and (user.digest_size, user.digest_hour, user.min_score) == (20, 23, 0.0)
    reply = commands.handle(ME, "/digest")[0]
    assert 1 <= len(reply.buttons) <= 20


def test_interests_need_real_words(commands: Commands) -> None:
    for text in ["\u200b\u200b\u200b\u200b", "\u200b \u200c \u200d \ufeff", "\x00\x01\x02\x03", "!!! ???",
                 "12345 678", "\u2063\u2063x\u2063"]:
        assert "too short" in answer(commands, f"/interests {text}"), repr(text)
    user = commands.store.get_user(7)
    assert user is not None and user.interests == ""
    answer(commands, "/interests dark\u200b matter in dwarf galaxies\x07")
    user = commands.store.get_user(7)
    assert user is not None and user.interests == "dark matter in dwarf galaxies"
    answer(commands, "/interests Dunkle Materie")
    assert commands.store.get_user(7).interests == "Dunkle Materie"


def test_forged_and_stale_buttons_are_out_of_date_not_crashes(commands: Commands,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    pid = commands.store.announced_ids(LATEST)[0]
    for data in ["LK:²", "FG:²", "F:²", "L:²:" + pid, "D:1:²", "S:²", "C:x²", "LK:0", "LK:-1", "LK:99999999999",
                 "FG:100", "ST:cross:maybe", "L:1", "L:100:" + pid, "LK:", "Z:1", "", "LK", "\x00:1"]:
        replies = commands.press(Caller(8, 8), data, [])
        assert len(replies) == 1 and replies[0].toast in {buttons.OUT_OF_DATE, buttons.OLDER_VERSION}, data
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # and every button the bot writes parses back to what it meant
    assert buttons.parse(buttons.like(3, pid)) == buttons.Feedback(1, 3, pid)
    assert buttons.parse(buttons.dislike(0, "hep-th/9901002")) == buttons.Feedback(-1, 0, "hep-th/9901002")
    assert buttons.parse(buttons.field_menu()) == buttons.FieldMenu(None)
    assert buttons.parse(buttons.likes_page(2)) == buttons.LikesPage(2)
    assert buttons.parse(buttons.setting("cross:off")) == buttons.SettingToggle("cross:off")
    assert buttons.parse(buttons.follow("astro-ph.GA")) == buttons.Follow("astro-ph.GA")
    page = commands.press(Caller(8, 8), buttons.field_menu(0), [])[0]
    assert page.edit and page.buttons


def test_a_group_chat_never_rebinds_or_reactivates_a_user(commands: Commands) -> None:
    store = commands.store
    answer(commands, "/start", Caller(9, 9, "Ann"))
    assert store.get_user(9).chat_id == 9
    group = Caller(9, -100123, "Ann", private=False)
    assert commands.press(group, buttons.field_menu(0), [])[0].buttons
    answer(commands, "/help", group)
    assert store.get_user(9).chat_id == 9
    store.update_user(9, active=0)  # blocked the bot in private
    answer(commands, "/help", group)
    assert store.get_user(9).active is False
    answer(commands, "/help", Caller(9, 9, "Ann"))
    assert store.get_user(9).active is True
    answer(commands, "/help", Caller(10, -100123, "Bob", private=False))  # first contact from a group
    assert store.get_user(10).chat_id is None


# -- the terminal ---------------------------------------------------------------------------------------
def test_a_lone_unicode_digit_does_not_end_the_terminal_session(commands: Commands) -> None:
    out = io.StringIO()
    console = Console(commands, out=out, echo=True)
    console.run(io.StringIO("/start\n²\n٣\n/likes ²\n/help\n1\n"))
    text = out.getvalue()
    assert "» ²" in text and "» /help" in text and "What I can do" in text
    assert "The page is a whole number" in text
    assert text.count("I read commands") == 2  # "²" and "٣" are text, not button numbers
    assert "Pick a field" in text or "tap to follow" in text  # "1" still presses a button of /start


def test_warmup_prepares_the_commands_engine_and_the_first_digest_shows_predictions(
        settings: Settings, demo_store: Store) -> None:
    made: list[Engine] = []

    def factory() -> Engine:
        made.append(hash_engine(settings, demo_store))
        return made[-1]

    commands = Commands(settings, demo_store, engine_factory=factory, classifier_factory=KeywordClassifier)
    commands.scheduled = False
    warmup = Warmup(commands)
    warmup.stop.set()  # embed, but leave the latest day's predictions to the digest
    warmup.start()
    out = io.StringIO()
    console = Console(commands, out=out, echo=True, warmup=warmup)
    console.run(io.StringIO("/follow cs.LG\n/digest\n"))
    warmup.join(timeout=120)
    assert len(made) == 1 and commands.engine is made[0]  # one Engine, so one writer per index
    text = out.getvalue()
    assert f"digest for {LATEST}" in text and "predicted cs.LG 72%" in text
    assert warmup.classified == 0


def test_warmup_predicts_the_latest_day_through_the_commands_classifier(settings: Settings,
                                                                        demo_store: Store) -> None:
    commands = Commands(settings, demo_store, engine_factory=lambda: hash_engine(settings, demo_store),
                        classifier_factory=KeywordClassifier)
    warmup = Warmup(commands)
    warmup.start()
    assert warmup.ready.wait(120)
    warmup.join(timeout=120)
    ids = demo_store.announced_ids(LATEST)
    assert warmup.classified == len(ids) and set(demo_store.predictions(ids, model="keywords-test")) == set(ids)


def test_terminal_log_lines_go_to_the_log_file_not_the_chat(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import sys
    root = logging.getLogger()
    terminal = logging.StreamHandler(sys.stderr)
    saved = (root.level, list(root.handlers))
    root.addHandler(terminal)
    try:
        quiet_logging(tmp_path)
        quiet_logging(tmp_path)  # twice: still one log file handler
        logging.getLogger("recommender.sources.arxiv").warning("arXiv answered 503; retrying in 3 s")
        logging.getLogger().warning("Please consider to run pre-processing before quantization")
        err = capsys.readouterr().err
        assert "retrying" not in err and "quantization" not in err
        for h in root.handlers:
            h.flush()
        log = (tmp_path / "bot.log").read_text(encoding="utf-8")
        assert log.count("arXiv answered 503") == 1 and "quantization" in log
        from huggingface_hub.utils.tqdm import are_progress_bars_disabled
        assert are_progress_bars_disabled()
    finally:
        from huggingface_hub.utils.tqdm import enable_progress_bars
        enable_progress_bars()
        for h in root.handlers:
            if h not in saved[1]:
                root.removeHandler(h)
                h.close()
        root.removeHandler(terminal)
        root.setLevel(saved[0])
        logging.captureWarnings(False)


def test_thread_safe_engine_creation(settings: Settings, demo_store: Store) -> None:
    calls: list[int] = []
    gate = threading.Barrier(4)

    def factory() -> Engine:
        calls.append(1)
        return hash_engine(settings, demo_store)

    commands = Commands(settings, demo_store, engine_factory=factory, classifier_factory=KeywordClassifier)
    got: list[object] = []

    def ask() -> None:
        gate.wait()
        got.append(commands.engine)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(calls) == 1 and len({id(e) for e in got}) == 1
