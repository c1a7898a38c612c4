"""The SQLite schema of arxiv-digest and its forward migrations.

``MIGRATIONS`` is an append-only list: migration *n* brings a database from schema version *n-1* to *n*.
Never edit a released migration; add a new one (and a test in ``tests/test_migrations.py`` that a database
of the previous version keeps its rows). ``migrate`` applies the missing ones in one transaction each,
records the version in ``PRAGMA user_version`` and refuses a database newer than the code.
"""
from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

log = logging.getLogger(__name__)


V1 = """
        CREATE TABLE papers (
            id TEXT PRIMARY KEY,            -- arXiv id without version
            version INTEGER NOT NULL DEFAULT 1,
            title TEXT NOT NULL,
            abstract TEXT NOT NULL DEFAULT '',
            authors TEXT NOT NULL DEFAULT '',   -- display string, "A, B, C"
            primary_category TEXT,
            comment TEXT,
            journal_ref TEXT,
            doi TEXT,
            published TEXT,
            updated TEXT,
            announced TEXT,                 -- YYYY-MM-DD of its first listing (new or cross)
            announce_type TEXT,             -- type of that first listing
            source TEXT NOT NULL DEFAULT '',
            content_hash TEXT NOT NULL,
            stored_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
        );
        CREATE INDEX idx_papers_announced ON papers(announced);
        CREATE TABLE authors (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE
        );
        CREATE TABLE paper_authors (
            paper_id TEXT NOT NULL REFERENCES papers(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            author_id INTEGER NOT NULL REFERENCES authors(id),
            PRIMARY KEY (paper_id, position)
        );
        CREATE INDEX idx_paper_authors_author ON paper_authors(author_id);
        CREATE TABLE paper_categories (
            paper_id TEXT NOT NULL REFERENCES papers(id) ON DELETE CASCADE,
            category TEXT NOT NULL,
            is_primary INTEGER NOT NULL DEFAULT 0,
            position INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (paper_id, category)
        );
        CREATE INDEX idx_paper_categories_category ON paper_categories(category);
        -- every daily listing a paper appeared in: (paper, day, new|cross|replace|replace-cross)
        CREATE TABLE announcements (
            paper_id TEXT NOT NULL REFERENCES papers(id) ON DELETE CASCADE,
            announced TEXT NOT NULL,
            announce_type TEXT NOT NULL,
            PRIMARY KEY (paper_id, announced)
        );
        CREATE INDEX idx_announcements_day ON announcements(announced, announce_type);
        -- each daily RSS fetch we made, to notice new announcement days and empty days
        CREATE TABLE feed_fetches (
            fetched_at TEXT NOT NULL,
            categories TEXT NOT NULL,
            announced TEXT,                 -- NULL when the feed was empty (no announcement)
            papers INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE taxonomy (
            code TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            archive TEXT,
            grp TEXT,
            active INTEGER NOT NULL DEFAULT 1,
            canonical TEXT NOT NULL         -- the code aliases map to (e.g. math.MP -> math-ph)
        );
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,         -- Telegram user id (or a local id for the terminal)
            chat_id INTEGER,
            name TEXT,
            timezone TEXT NOT NULL DEFAULT 'UTC',
            digest_hour INTEGER NOT NULL DEFAULT 8,
            digest_size INTEGER NOT NULL DEFAULT 5,
            min_score REAL NOT NULL DEFAULT 0.3,
            cross_lists INTEGER NOT NULL DEFAULT 1,
            paused INTEGER NOT NULL DEFAULT 0,
            active INTEGER NOT NULL DEFAULT 1,  -- 0 once the user blocked the bot
            interests TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
        );
        CREATE TABLE user_categories (
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            category TEXT NOT NULL,
            PRIMARY KEY (user_id, category)
        );
        CREATE TABLE feedback (
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            paper_id TEXT NOT NULL,
            value INTEGER NOT NULL CHECK (value IN (-1, 1)),
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
            PRIMARY KEY (user_id, paper_id)
        );
        -- one row per (user, announcement day) digest; status pending -> sent | empty | failed
        CREATE TABLE digests (
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            announced TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
            completed_at TEXT,
            PRIMARY KEY (user_id, announced)
        );
        -- one row per paper sent to a user; decides "never twice"
        CREATE TABLE deliveries (
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            paper_id TEXT NOT NULL,
            announced TEXT NOT NULL,
            rank INTEGER,
            score REAL,
            message_id INTEGER,
            sent_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
            PRIMARY KEY (user_id, paper_id)
        );
        CREATE TABLE predictions (
            paper_id TEXT NOT NULL REFERENCES papers(id) ON DELETE CASCADE,
            category TEXT NOT NULL,
            probability REAL NOT NULL,
            model TEXT NOT NULL,
            PRIMARY KEY (paper_id, category)
        );
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT
        );
"""

# author follows, keyword alerts (full-text search over titles and abstracts) and weekly digests
V_FOLLOWS_ALERTS = """
        -- NULL: a digest every announcement; 0-6 (Monday = 0): one a week, on that weekday at digest_hour
        ALTER TABLE users ADD COLUMN digest_weekday INTEGER;
        -- the matching key of each author name (accents, case, punctuation and name order folded away),
        -- filled from authors by recommender.store.follows (ids only grow, so a high-water mark suffices)
        CREATE TABLE author_keys (
            author_id INTEGER PRIMARY KEY REFERENCES authors(id),
            surname TEXT NOT NULL,
            given TEXT NOT NULL             -- given names and initials, folded, space separated
        );
        CREATE INDEX idx_author_keys_surname ON author_keys(surname, given);
        CREATE TABLE author_follows (
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            surname TEXT NOT NULL,
            given TEXT NOT NULL,
            name TEXT NOT NULL,             -- as shown, e.g. "Claudio Bonanno"
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
            PRIMARY KEY (user_id, surname, given)
        );
        CREATE INDEX idx_author_follows_surname ON author_follows(surname);
        CREATE TABLE alerts (
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            query TEXT NOT NULL,            -- folded words, space separated: the FTS5 phrase
            phrase TEXT NOT NULL,           -- as the user typed it (cleaned), for display
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
            PRIMARY KEY (user_id, query)
        );
        CREATE VIRTUAL TABLE papers_fts USING fts5(
            title, abstract, content='papers', content_rowid='rowid',
            tokenize='unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER papers_fts_insert AFTER INSERT ON papers BEGIN
            INSERT INTO papers_fts (rowid, title, abstract) VALUES (new.rowid, new.title, new.abstract);
        END;
        CREATE TRIGGER papers_fts_delete AFTER DELETE ON papers BEGIN
            INSERT INTO papers_fts (papers_fts, rowid, title, abstract)
                VALUES ('delete', old.rowid, old.title, old.abstract);
        END;
        CREATE TRIGGER papers_fts_update AFTER UPDATE OF title, abstract ON papers BEGIN
            INSERT INTO papers_fts (papers_fts, rowid, title, abstract)
                VALUES ('delete', old.rowid, old.title, old.abstract);
            INSERT INTO papers_fts (rowid, title, abstract) VALUES (new.rowid, new.title, new.abstract);
        END;
        INSERT INTO papers_fts (papers_fts) VALUES ('rebuild');
"""

# Bulk harvest progress (recommender/sources/harvest.py): one row per (route, query, window of days); a page's
# papers and the window's cursor are committed together, so an interrupted harvest resumes where it stopped.
V_HARVEST = """
        CREATE TABLE harvest_windows (
            route TEXT NOT NULL,            -- api | oai
            query TEXT NOT NULL,            -- api: the categories asked for; oai: the set spec
            first_day TEXT NOT NULL,        -- YYYY-MM-DD, inclusive (api: submission days; oai: datestamps)
            last_day TEXT NOT NULL,         -- YYYY-MM-DD, inclusive
            status TEXT NOT NULL DEFAULT 'pending',  -- pending | done | split (into two halves, done apart)
            cursor TEXT,                    -- where to go on: api: the next start offset; oai: resumption token
            total INTEGER,                  -- results the source reported for the window
            pages INTEGER NOT NULL DEFAULT 0,
            papers INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
            PRIMARY KEY (route, query, first_day, last_day)
        );
"""

# group chats and quick checks (recommender/store/groups.py); library import needs no table (papers_fts)
V_LIBRARY_GROUPS = """
        -- a group chat the bot serves; its settings and profile are the users row whose id is the chat id
        CREATE TABLE chat_groups (
            chat_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
            title TEXT NOT NULL DEFAULT '',
            added_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
        );
        -- quick checks: a user's choice (no row: on after their first week) and one row per digest asked about
        CREATE TABLE quickcheck_settings (
            user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
            enabled INTEGER NOT NULL
        );
        CREATE TABLE quickchecks (
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            announced TEXT NOT NULL,
            paper_ids TEXT NOT NULL,        -- the papers asked about, space separated
            status TEXT NOT NULL DEFAULT 'sending',  -- sending (recorded before the request) | sent | failed
            message_id INTEGER,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
            PRIMARY KEY (user_id, announced)
        );
"""

# Each migration is an SQL script run inside one transaction.
MIGRATIONS: list[str] = [V1, V_FOLLOWS_ALERTS, V_HARVEST, V_LIBRARY_GROUPS]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, migrations: Sequence[str] = MIGRATIONS) -> int:
    """Apply the ``migrations`` this database lacks; return the resulting schema version (``len(migrations)``).

    A failing migration is rolled back whole and leaves the database at the version before it."""
    target = len(migrations)
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > target:
        raise RuntimeError(
            f"database schema version {current} is newer than this code ({target}); upgrade arxiv-digest"
        )
    for version in range(current + 1, target + 1):
        log.info("migrating database to schema version %d", version)
        try:
            conn.executescript(f"BEGIN;\n{migrations[version - 1]}\nPRAGMA user_version = {version};\nCOMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return target
