"""Schema migrations past the current version, with a synthetic next migration: a database holding real papers,
a user and their feedback migrates forward and keeps every row; a failing migration is rolled back whole; a
database newer than the code is refused and left untouched."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from recommender import paths
from recommender.models import Paper
from recommender.store import SCHEMA_VERSION, Store
from recommender.store.schema import MIGRATIONS, migrate

# what a next release might do: a new column with a default, a new table filled from existing rows
NEXT = """
    ALTER TABLE papers ADD COLUMN license TEXT NOT NULL DEFAULT '';
    CREATE TABLE paper_notes (
        paper_id TEXT NOT NULL REFERENCES papers(id) ON DELETE CASCADE,
        note TEXT NOT NULL
    );
    INSERT INTO paper_notes (paper_id, note) SELECT id, 'migrated' FROM papers;
"""
# fails half-way: the table it creates first must not survive
BROKEN = """
    CREATE TABLE half_done (x INTEGER);
    INSERT INTO no_such_table VALUES (1);
"""
TABLES = ("papers", "paper_authors", "paper_categories", "announcements", "taxonomy", "users", "feedback")


def _counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


@pytest.fixture
def filled_db(tmp_path: Path, demo_papers: list[Paper]) -> Path:
    """A database at the code's schema version holding 50 real papers, a user and their feedback."""
    path = tmp_path / "db.sqlite"
    with Store(path, taxonomy=paths.TAXONOMY) as store:
        store.upsert_papers(demo_papers[:50])
        store.ensure_user(7, name="Ada")
        store.set_feedback(7, demo_papers[0].id, 1)
        store.set_feedback(7, demo_papers[1].id, -1)
    return path


def test_a_database_with_data_migrates_forward_and_keeps_its_rows(filled_db: Path,
                                                                 demo_papers: list[Paper]) -> None:
    before = _counts(filled_db)
    assert before["papers"] == 50 and before["feedback"] == 2 and before["taxonomy"] > 100
    conn = sqlite3.connect(filled_db)
    try:
        assert migrate(conn, [*MIGRATIONS, NEXT]) == SCHEMA_VERSION + 1
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert conn.execute("SELECT count(*) FROM paper_notes WHERE note = 'migrated'").fetchone()[0] == 50
        assert {r[0] for r in conn.execute("SELECT DISTINCT license FROM papers")} == {""}
        title = conn.execute("SELECT title FROM papers WHERE id = ?", (demo_papers[0].id,)).fetchone()[0]
        assert title == demo_papers[0].title
        assert migrate(conn, [*MIGRATIONS, NEXT]) == SCHEMA_VERSION + 1  # nothing left to apply
    finally:
        conn.close()
    assert _counts(filled_db) == before


def test_a_database_newer_than_the_code_is_refused_and_untouched(filled_db: Path) -> None:
    conn = sqlite3.connect(filled_db)
    migrate(conn, [*MIGRATIONS, NEXT])
    conn.close()
    before = _counts(filled_db)
    with pytest.raises(RuntimeError, match=f"version {SCHEMA_VERSION + 1} is newer than this code"):
        Store(filled_db, taxonomy=paths.TAXONOMY)
    assert _counts(filled_db) == before
    conn = sqlite3.connect(filled_db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    finally:
        conn.close()


def test_a_failing_migration_is_rolled_back_whole(filled_db: Path) -> None:
    before = _counts(filled_db)
    conn = sqlite3.connect(filled_db, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
            migrate(conn, [*MIGRATIONS, BROKEN])
        assert not conn.in_transaction
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchone() is None
    finally:
        conn.close()
    assert _counts(filled_db) == before
    with Store(filled_db) as store:  # the code of this version still opens it
        assert store.schema_version == SCHEMA_VERSION


def test_every_migration_applies_in_order_to_an_empty_database(tmp_path: Path) -> None:
    """Every released migration applies in order to an empty database and yields the current schema."""
    conn = sqlite3.connect(tmp_path / "empty.sqlite", isolation_level=None)
    try:
        for k in range(1, len(MIGRATIONS) + 1):
            assert migrate(conn, MIGRATIONS[:k]) == k
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    assert set(TABLES) | {"deliveries", "digests", "predictions", "meta"} <= tables
