"""Followed authors and keyword alerts: name matching, the FTS5 phrase search (tolerance and injection), the
migration of an existing database, "always in the digest" in the engine (one user and the batched path), the
terminal session of the issue, bad input, and the whole flow on Telegram through the fake Bot API server."""
from __future__ import annotations

import io
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.commands import Commands
from bot.console import Console
from bot.telegram import Deliverer, Runtime, running
from recommender import paths
from recommender.config import Settings
from recommender.models import Paper
from recommender.ranking.must_include import MAX_DAILY
from recommender.store import Store
from recommender.store.follows import MAX_ALERTS, alert_words, compatible, fold, split_name
from recommender.store.schema import MIGRATIONS, migrate
from tests.support.bot_fixtures import LATEST, KeywordClassifier, hash_engine, run
from tests.support.fake_telegram import FakeTelegram

BONANNO = "2606.29885"  # by Claudio Bonanno, hep-lat, announced on LATEST
CATHETUS = "2606.28851"  # "The unreasonable effectiveness of the cathetus rule ...", physics.hist-ph, on LATEST
LIKED = "2606.28354"  # cs.LG


def console_for(settings: Settings, store: Store) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    commands = Commands(settings, store, engine_factory=lambda: hash_engine(settings, store),
                        classifier_factory=KeywordClassifier)
    return Console(commands, out=out, echo=True), out


def session(console: Console, out: io.StringIO, *lines: str) -> str:
    start = len(out.getvalue())
    console.run(io.StringIO("\n".join(lines) + "\n"))
    return out.getvalue()[start:]


def add_paper(store: Store, pid: str, authors: list[str], title: str = "A paper", abstract: str = "",
              categories: tuple[str, ...] = ("hep-lat",), day: str = LATEST, kind: str = "new") -> None:
    store.upsert_papers([Paper(pid, title, abstract or f"Abstract of {title}.", authors, list(categories),
                               announced=day, announce_type=kind)])


# -- names ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Claudio Bonanno", "CLAUDIO BONANNO", "Bonanno, Claudio", "claudio  bonanno",
                                  "Cláudio Bonanno", "Bonanno, Cláudio Jr."])
def test_name_variants_fold_to_one_key(name: str) -> None:
    assert split_name(name) == (("claudio",), "bonanno")


def test_initials_particles_and_latex_accents() -> None:
    assert split_name("C. Bonanno") == (("c",), "bonanno")
    assert compatible(("c",), ("claudio",)) and compatible((), ("claudio",))
    assert not compatible(("carlo",), ("claudio",)) and not compatible(("m", "c"), ("claudio",))
    assert split_name("Ludwig van Beethoven") == split_name("Beethoven, Ludwig van") == (("ludwig",), "beethoven")
    assert split_name(r"Kurt G\"{o}del") == split_name("Kurt Gödel") == (("kurt",), "godel")
    assert fold(r"Erwin Schr\"odinger") == "erwin schrodinger"
    assert split_name("J.-P. Serre") == (("j", "p"), "serre")
    assert split_name("12345") == ((), "12345") and split_name("...") == ((), "")


# -- alerts: FTS5 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("phrase", ["cathetus rule", "Cathetus Rule", '"cathetus rule"', "cathetus-rule",
                                    "CATHETUS\nrule", "“cathetus rule”"])
def test_alert_phrases_match_case_and_punctuation_free(demo_store: Store, phrase: str) -> None:
    ids = demo_store.announced_ids(LATEST)
    assert demo_store.phrase_matches(alert_words(phrase), ids) == {CATHETUS}


def test_latex_hyphenation_and_line_breaks_in_the_text_match(store: Store) -> None:
    add_paper(store, "2601.00001", ["A. Author"], "On the {\\em cathetus} rule", "Nothing else.")
    add_paper(store, "2601.00002", ["A. Author"], "Optics", "We revisit the cathetus-\nrule of Euclid.")
    add_paper(store, "2601.00003", ["A. Author"], "Optics", "The cathetus is not a rule; rules of thumb.")
    add_paper(store, "2601.00004", ["A. Author"], "Cathetusrule", "No spaces, no match.")
    ids = [f"2601.0000{k}" for k in range(1, 5)]
    assert store.phrase_matches(alert_words("cathetus rule"), ids) == {"2601.00001", "2601.00002"}
    assert store.phrase_matches(alert_words("rule"), ids) == {"2601.00001", "2601.00002", "2601.00003"}
    # whole words: "rule" does not match "rules" alone; "cathet" matches nothing
    assert store.phrase_matches(alert_words("cathet"), ids) == set()


def test_fts_query_syntax_typed_by_a_user_is_matched_as_words(demo_store: Store) -> None:
    ids = demo_store.announced_ids(LATEST)
    many = demo_store.phrase_matches(["learning"], ids)
    assert len(many) > 50  # a word that would widen an OR
    for phrase in ['cathetus" OR "learning', "cathetus OR learning", "NEAR(cathetus learning)", "title: cathetus",
                   "cathetus AND NOT optics", "^cathetus learning", 'cathetus:"learning"', '""', "*", "(", ")"]:
        assert demo_store.phrase_matches(alert_words(phrase), ids) == set(), phrase
    learn = demo_store.phrase_matches(alert_words("learn*"), ids)  # a word, not a prefix
    assert learn == demo_store.phrase_matches(["learn"], ids) and not many <= learn
    assert demo_store.phrase_matches(alert_words("{cathetus}*"), ids) == {CATHETUS}


def test_a_new_version_of_a_paper_is_searched_by_its_new_text(store: Store) -> None:
    add_paper(store, "2601.00010", ["A. Author"], "Old title", "About the cathetus rule.")
    assert store.phrase_matches(["cathetus", "rule"], ["2601.00010"]) == {"2601.00010"}
    store.upsert_papers([Paper("2601.00010", "New title", "About mirrors only.", ["A. Author"], ["hep-lat"],
                               version=2)])
    assert store.phrase_matches(["cathetus", "rule"], ["2601.00010"]) == set()
    assert store.phrase_matches(["mirrors"], ["2601.00010"]) == {"2601.00010"}


def test_a_database_of_the_previous_version_keeps_its_rows_and_is_indexed(
        tmp_path: Path, demo_papers: list[Paper], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    migrate(conn, MIGRATIONS[:1])  # schema version 1: before follows and alerts
    conn.close()
    # fill it through the code of that version: a Store that migrates no further
    import recommender.store as store_pkg
    with monkeypatch.context() as m:
        m.setattr(store_pkg, "migrate", lambda c: migrate(c, MIGRATIONS[:1]))
        old = Store(path, taxonomy=paths.TAXONOMY)
        papers = [p for p in demo_papers if p.id in (CATHETUS, BONANNO)] + demo_papers[:30]
        old.upsert_papers(papers)
        old.close()
    conn = sqlite3.connect(path)  # a user of that version (its User had no weekday to read)
    with conn:
        conn.execute("INSERT INTO users (id, name, digest_hour) VALUES (7, 'Ada', 9)")
        conn.execute("INSERT INTO feedback (user_id, paper_id, value) VALUES (7, ?, 1)", (demo_papers[0].id,))
    before = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("papers", "authors", "users", "feedback")}
    conn.close()
    with Store(path, taxonomy=paths.TAXONOMY) as store:
        after = store.stats()
        assert store.schema_version == len(MIGRATIONS)
        assert {k: after[k] for k in before} == before and before["papers"] == 32
        user = store.get_user(7)
        assert user is not None and user.digest_hour == 9 and user.digest_weekday is None
        assert store.liked_ids(7) == [demo_papers[0].id]
        # existing rows were indexed by the migration; their authors get keys on first use
        assert store.phrase_matches(["cathetus", "rule"], [p.id for p in papers]) == {CATHETUS}
        assert store.sync_author_keys() == after["authors"]
        assert [a.name for a, _, _ in store.authors_by_surname(["bonanno"])] == ["Claudio Bonanno"]


# -- the digest --------------------------------------------------------------------------------------------
def test_followed_authors_and_alerts_are_always_in_the_digest(settings: Settings, demo_store: Store) -> None:
    store = demo_store
    engine = hash_engine(settings, store)
    store.ensure_user(1, chat_id=1)
    store.set_user_categories(1, ["cs.LG"])
    store.set_feedback(1, LIKED, 1)
    store.update_user(1, min_score=0.99)  # a threshold nothing reaches: only the always-included papers remain
    assert engine.digest(1, LATEST) == []
    store.follow_author(1, "Claudio Bonanno")
    store.add_alert(1, "cathetus rule")
    recs = engine.digest(1, LATEST)
    assert [(r.paper.id, r.why) for r in recs] == [
        (BONANNO, "by Claudio Bonanno, whom you follow"), (CATHETUS, "matches your alert \u201ccathetus rule\u201d")]
    # sent once, never again (for that day or any other)
    store.record_digest(1, LATEST, [(r.paper.id, k, r.score) for k, r in enumerate(recs, 1)])
    assert engine.digest(1, LATEST) == []


def test_a_paper_matching_both_says_both_and_the_bound_holds(settings: Settings, demo_store: Store) -> None:
    store = demo_store
    engine = hash_engine(settings, store)
    store.ensure_user(2, chat_id=2, min_score=0.0, digest_size=5)
    store.set_user_categories(2, ["cs.LG"])
    store.follow_author(2, "C. Bonanno")
    store.add_alert(2, "topological susceptibility")
    recs = engine.digest(2, LATEST)
    assert recs[0].paper.id == BONANNO
    assert recs[0].why == ("by Claudio Bonanno, whom you follow; "
                           "matches your alert \u201ctopological susceptibility\u201d")
    assert len(recs) == 5  # one always-included paper takes a place; the ranking fills the rest
    store.add_alert(2, "learning")  # matches hundreds of papers
    recs = engine.digest(2, LATEST)
    assert len(recs) == MAX_DAILY  # beyond the digest size of 5, but bounded
    assert all(r.why.startswith(("by Claudio Bonanno, whom you follow", "matches your alert")) for r in recs)
    store.update_user(2, digest_size=15)
    recs = engine.digest(2, LATEST)
    assert len(recs) == 15 and sum(r.why.startswith(("by ", "matches your")) for r in recs) == MAX_DAILY


def test_cross_lists_off_and_rated_papers_are_respected(settings: Settings, demo_store: Store) -> None:
    store = demo_store
    engine = hash_engine(settings, store)
    add_paper(store, "2606.90010", ["A. Author"], "Mirrors", "A cross-listed note on the cathetus rule.",
              categories=("physics.optics", "math.HO"), kind="cross")
    store.ensure_user(3, chat_id=3)
    store.add_alert(3, "cathetus rule")
    assert [r.paper.id for r in engine.digest(3, LATEST)] == [CATHETUS, "2606.90010"]
    store.update_user(3, cross_lists=0)
    assert [r.paper.id for r in engine.digest(3, LATEST)] == [CATHETUS]
    store.set_feedback(3, CATHETUS, -1)  # rated: never in a digest again
    assert engine.digest(3, LATEST) == []


def test_batched_digests_equal_one_by_one(settings: Settings, demo_store: Store) -> None:
    store = demo_store
    engine = hash_engine(settings, store)
    lg = store.announced_ids(LATEST, categories=["cs.LG"])
    store.ensure_user(10, chat_id=10, min_score=0.0)  # likes, categories, an author
    store.set_user_categories(10, ["cs.LG"])
    store.set_feedback(10, LIKED, 1)
    store.follow_author(10, "Bonanno, Claudio")
    store.ensure_user(11, chat_id=11)  # only an alert: no categories, likes or interests
    store.add_alert(11, "cathetus rule")
    store.ensure_user(12, chat_id=12, min_score=0.0, cross_lists=0)  # interests and two alerts, no cross-lists
    store.update_user(12, interests="optics and the history of physics")
    store.add_alert(12, "cathetus rule")
    store.add_alert(12, "neural")
    store.ensure_user(13, chat_id=13)  # categories only (ranked by the categories' names)
    store.set_user_categories(13, ["cs.CV"])
    store.ensure_user(14, chat_id=14)  # nothing at all
    store.record_digest(10, "2026-06-29", [(lg[0], 1, 0.5)])  # already sent: never again
    uids = [10, 11, 12, 13, 14]
    batched = engine.digests(uids, LATEST)
    for uid in uids:
        single = engine.digest(uid, LATEST)
        assert [(r.paper.id, r.why) for r in batched[uid]] == [(r.paper.id, r.why) for r in single], uid
        assert [r.score for r in batched[uid]] == pytest.approx([r.score for r in single], abs=1e-5)
    assert batched[10][0].why == "by Claudio Bonanno, whom you follow" and lg[0] not in {
        r.paper.id for r in batched[10]}
    assert [r.paper.id for r in batched[11]] == [CATHETUS]
    assert CATHETUS in {r.paper.id for r in batched[12]} and batched[14] == []


# -- the terminal ----------------------------------------------------------------------------------------------
def test_the_issue_session_in_the_terminal(settings: Settings, demo_store: Store) -> None:
    console, out = console_for(settings, demo_store)
    text = session(console, out, "/start", "/follow cs.LG", f"/like {LIKED}", "/follow author Claudio Bonanno",
                   "/alert cathetus rule", "/likes", "/digest")
    assert "Following Claudio Bonanno" in text and "Alert set" in text
    assert f"({LIKED})" in text.split("» /likes")[1].split("» /digest")[0]
    digest = text.split("» /digest")[1]
    assert f"Your arXiv digest for {LATEST}" in digest
    assert "The topological susceptibility slope" in digest and "↳ by Claudio Bonanno, whom you follow" in digest
    assert "cathetus rule in ancient and modern optics" in digest
    assert "↳ matches your alert \u201ccathetus rule\u201d" in digest
    assert {BONANNO, CATHETUS} <= demo_store.delivered_ids(1, LATEST)


def test_ambiguous_unknown_and_suggested_authors_as_choices(settings: Settings, demo_store: Store) -> None:
    store = demo_store
    add_paper(store, "2606.90001", ["Carlo Bonanno", "Maria Rossi"], "Lattice QCD at finite density")
    add_paper(store, "2606.90002", ["Maria Rossi", "Luca Bianchi"], "Gauge theories on the lattice")
    console, out = console_for(settings, store)
    text = session(console, out, "/follow author C. Bonanno")
    assert "Several authors could be C. Bonanno" in text
    assert "Claudio Bonanno (1 paper)" in text and "Carlo Bonanno (1 paper)" in text
    number = next(line.split("]")[0].split("[")[-1] for line in text.splitlines() if "Carlo Bonanno" in line)
    text = session(console, out, number)
    assert "Following Carlo Bonanno" in text
    assert [f.name for f in store.followed_authors(1)] == ["Carlo Bonanno"]
    text = session(console, out, "/follow author Bonnano, Claudio")  # a typo in the surname
    assert "Did you mean" in text and "Claudio Bonanno" in text
    text = session(console, out, "/follow author Zyxwvu Qwertyuiop")
    assert "I know no author Zyxwvu Qwertyuiop" in text and "Check the spelling" in text
    # authors recurring among the likes are suggested by /follow, and a tap follows them
    text = session(console, out, "/like 2606.90001 2606.90002", "/follow")
    assert "Authors you follow: Carlo Bonanno" in text and "Authors in several of your likes" in text
    assert "+ Maria Rossi (2 liked)" in text and "+ Carlo Bonanno" not in text
    number = next(line.split("]")[0].split("[")[-1] for line in text.splitlines() if "Maria Rossi" in line)
    text = session(console, out, number)
    assert "Following Maria Rossi" in text
    text = session(console, out, "/unfollow author rossi", "/unfollow author Nobody Known")
    assert "Unfollowed Maria Rossi." in text and "You were not following Nobody Known" in text
    assert [f.name for f in store.followed_authors(1)] == ["Carlo Bonanno"]


def test_bad_input_gets_short_helpful_replies_and_stores_nothing_broken(settings: Settings,
                                                                         demo_store: Store) -> None:
    store = demo_store
    console, out = console_for(settings, store)
    text = session(console, out, "/follow author", "/follow author 12345", "/follow author " + "x" * 300,
                   "/follow author \u200b\u200b", "/alert", '/alert "', "/alert ab", "/alert " + "word " * 12,
                   "/alert " + "y" * 300, "/unalert", "/unalert nothing here", "/unalert 7", "/alerts",
                   "/settings frequency fortnightly", "/settings frequency weekly someday", "/settings frequency")
    assert "Traceback" not in text and "went wrong" not in text
    assert "You follow no authors yet" in text
    assert text.count("Give an author's name") == 2 and "an author's name is at most 100" in text
    assert "You have no alerts" in text and text.count("An alert needs a word") == 2
    assert "at most 8 words" in text and "under 100 characters" in text
    assert "Say daily, or weekly and a weekday" in text
    assert store.followed_authors(1) == [] and store.alerts(1) == []
    for k in range(MAX_ALERTS):
        store.add_alert(1, f"phrase number {k}")
    text = session(console, out, "/alert one too many", "/alert PHRASE  number 3")
    assert f"You have {MAX_ALERTS} alerts, the most I keep" in text
    assert "You already have an alert" in text
    assert len(store.alerts(1)) == MAX_ALERTS
    text = session(console, out, "/unalert 3", "/unalert Phrase-Number-4")
    assert "Removed the alert \u201cphrase number 2\u201d" in text
    assert "Removed the alert \u201cphrase number 4\u201d" in text
    assert len(store.alerts(1)) == MAX_ALERTS - 2


# -- Telegram ----------------------------------------------------------------------------------------------
def test_follow_and_alert_on_telegram_and_the_digest_at_the_users_hour(rt: Runtime, fake: FakeTelegram) -> None:
    uid = 2001
    add_paper(rt.store, "2606.90001", ["Carlo Bonanno"], "Lattice QCD at finite density", day="2026-06-29")

    async def go() -> None:
        async with running(rt) as app:
            fake.send_text(uid, "/follow cs.LG")
            fake.send_text(uid, f"/like {LIKED}")
            fake.send_text(uid, "/follow author c. BONANNO")
            msgs = await fake.replies(uid, 3)
            choice = msgs[-1]
            assert "Several authors could be" in choice.text
            assert all(d.startswith("FA:") and len(d.encode()) <= 64 for d in choice.callback_data())
            cb = fake.press(uid, choice, choice.button("Claudio Bonanno"))
            assert "Following Claudio Bonanno" in (await fake.answer_of(cb))["text"]
            await fake.replies(uid, 4)
            stale = fake.press(uid, choice, "FA:notanumber")
            assert "out of date" in (await fake.answer_of(stale))["text"]
            gone = fake.press(uid, choice, "FA:999999999")
            assert "no longer know that author" in (await fake.answer_of(gone))["text"]
            fake.send_text(uid, "/alert «Cathetus Rule»")
            fake.send_text(uid, "/alert (*)")
            fake.send_text(uid, "/help")
            msgs = await fake.replies(uid, 7)
            assert "Alert set" in msgs[4].text and "\u201cCathetus Rule\u201d" in msgs[4].text
            assert "An alert needs a word" in msgs[5].text
            assert "/alert" in msgs[6].text and "/follow author Claudio Bonanno" in msgs[6].text
            assert {c["command"] for c in fake.commands} >= {"alert", "alerts", "unalert", "follow"}
            report = await Deliverer(rt, app.bot).run(now=datetime(2026, 6, 30, 8, 0, 30, tzinfo=UTC))
            assert report.sent == 1 and report.failed == 0
            digest = (await fake.replies(uid, 8))[-1]
            assert digest.text.startswith(f"Your arXiv digest for {LATEST}")
            assert "by Claudio Bonanno, whom you follow" in digest.text
            assert "matches your alert \u201cCathetus Rule\u201d" in digest.text
            assert "Lattice QCD" not in digest.text  # Carlo's paper: not followed, and of another day
            assert {BONANNO, CATHETUS} <= rt.store.delivered_ids(uid, LATEST)
        assert not [e for e in fake.errors if e[1] == 400], fake.errors

    run(go())


def test_store_limits_are_enforced_below_the_commands(store: Store) -> None:
    store.ensure_user(5)
    with pytest.raises(ValueError):
        store.add_alert(5, "  ...  ")
    with pytest.raises(ValueError):
        store.follow_author(5, "1234")
    assert store.follow_author(5, "Claudio Bonanno") and not store.follow_author(5, "BONANNO, Claudio")
    assert store.unfollow_authors(5, "c bonanno") == ["Claudio Bonanno"]
    user = store.get_user(5)
    assert user is not None and user.digest_weekday is None
