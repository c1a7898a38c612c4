"""The SQLite store: idempotent batched upserts, versions, announcements, taxonomy, users and feedback."""
from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from recommender.models import Paper
from recommender.store import SCHEMA_VERSION, Store, UnknownCategory


def test_upsert_is_idempotent_and_keeps_authors_and_categories(store: Store, demo_papers: list[Paper]) -> None:
    papers = demo_papers[:500]
    first = store.upsert_papers(papers, batch_size=128)
    assert first.inserted == 500
    before = store.conn.execute("SELECT count(*) FROM paper_authors").fetchone()[0]
    second = store.upsert_papers(papers, batch_size=128)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 500)
    assert store.conn.execute("SELECT count(*) FROM paper_authors").fetchone()[0] == before
    p = papers[42]
    got = store.get_paper(p.id)
    assert got is not None
    assert (got.title, got.authors, got.categories, got.abstract) == (p.title, p.authors, p.categories, p.abstract)
    primary = store.conn.execute(
        "SELECT category FROM paper_categories WHERE paper_id = ? AND is_primary = 1", (p.id,)).fetchall()
    assert [r[0] for r in primary] == [p.categories[0]]


def test_newer_version_updates_in_place_older_never_overwrites(store: Store, demo_papers: list[Paper]) -> None:
    p = dataclasses.replace(demo_papers[0], version=1, announced="2026-06-29", announce_type="new")
    store.upsert_papers([p])
    v2 = dataclasses.replace(p, version=2, title="A better title", authors=p.authors + ["New Author"],
                             announced="2026-07-02", announce_type="replace")
    stats = store.upsert_papers([v2])
    assert stats.updated == 1 and stats.text_changed == [p.id]  # its vector must be refreshed
    got = store.get_paper(p.id)
    assert got.version == 2 and got.title == "A better title" and got.authors[-1] == "New Author"
    # a replacement never makes a paper new again: first announcement day is kept
    assert (got.announced, got.announce_type) == ("2026-06-29", "new")
    assert store.count_papers() == 1
    old = store.upsert_papers([dataclasses.replace(p, version=1, title="stale")])
    assert old.unchanged == 1 and store.get_paper(p.id).title == "A better title"
    v3 = store.upsert_papers([dataclasses.replace(v2, version=3, comment="accepted")])
    assert v3.updated == 1 and v3.text_changed == []  # same text: the vector stays


def test_duplicate_ids_within_one_batch(store: Store, demo_papers: list[Paper]) -> None:
    p = demo_papers[1]
    store.upsert_papers([p, dataclasses.replace(p, version=p.version + 1, title="v+1"), p])
    assert store.get_paper(p.id).title == "v+1"


def test_announcements_and_day_queries(store: Store, demo_papers: list[Paper]) -> None:
    day = [p for p in demo_papers if p.announced == "2026-06-30"]
    store.upsert_papers(demo_papers)
    ids = store.announced_ids("2026-06-30", types=("new",))
    assert set(ids) == {p.id for p in day}
    assert store.latest_announcement() == "2026-06-30"
    lg = store.announced_ids("2026-06-30", types=("new",), categories=["cs.LG"])
    assert lg and all("cs.LG" in store.get_paper(i).categories for i in lg)


def test_failed_transaction_rolls_back(store: Store, demo_papers: list[Paper]) -> None:
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.upsert_papers(demo_papers[:10])
            raise RuntimeError("boom")
    assert store.count_papers() == 0


def test_taxonomy_aliases_and_unknown(store: Store) -> None:
    assert store.canonical_category("math.MP") == "math-ph"
    assert store.canonical_category("cs.lg") == "cs.LG"
    assert store.canonical_category("chao-dyn") == "nlin.CD"
    with pytest.raises(UnknownCategory, match="cs.LG"):
        store.canonical_category("cs.LGG")
    groups = store.category_groups()
    assert len(groups) == 8 and "astro-ph.GA" in groups["Physics"]
    assert store.is_archive("cs") and not store.is_archive("cs.LG")


def test_users_feedback_deliveries(store: Store) -> None:
    u = store.ensure_user(7, chat_id=7, timezone="Europe/Berlin")
    assert u.timezone == "Europe/Berlin" and u.active
    store.ensure_user(7, timezone="UTC")  # no overwrite
    assert store.get_user(7).timezone == "Europe/Berlin"
    assert store.set_feedback(7, "2501.01234", 1) is True
    assert store.set_feedback(7, "2501.01234", 1) is False
    store.set_feedback(7, "2501.00001", -1)
    assert store.liked_ids(7) == ["2501.01234"] and store.disliked_ids(7) == ["2501.00001"]
    assert store.record_delivery(7, "2501.01234", "2026-06-30", rank=1, score=0.7)
    assert not store.record_delivery(7, "2501.01234", "2026-06-30", rank=1, score=0.7)
    store.set_digest_status(7, "2026-06-30", "sent")
    assert store.last_digest_day(7) == "2026-06-30"
    with pytest.raises(ValueError):
        store.update_user(7, **{"id; DROP TABLE users": 1})


def test_schema_version_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        Store(path)


def test_predictions_are_kept_per_model(store: Store, demo_papers: list[Paper]) -> None:
    papers = demo_papers[:3]
    store.upsert_papers(papers)
    a, b, c = (p.id for p in papers)
    store.save_predictions([(a, [("cs.LG", 0.9), ("stat.ML", 0.6)]), (b, [("hep-th", 0.8)])], model="old-model")
    assert store.predictions([a, b, c]) == {a: [("cs.LG", 0.9), ("stat.ML", 0.6)], b: [("hep-th", 0.8)]}
    assert store.unpredicted_ids() == [c]
    # an upgraded model sees every paper as still to predict, and its rows replace the old ones
    assert store.unpredicted_ids(model="new-model") == [a, b, c]
    assert store.predictions([a, b], model="new-model") == {}
    store.save_predictions([(a, [("cs.CL", 0.7)])], model="new-model")
    assert store.predictions([a], model="new-model") == {a: [("cs.CL", 0.7)]}
    assert store.predictions([a]) == {a: [("cs.CL", 0.7)]}
    assert store.unpredicted_ids(model="new-model") == [b, c]
