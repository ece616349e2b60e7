"""Schema of the SQLite backend and the declared indexed paths.

Declared dotted paths get a column of their own (``p_<path>``) filled at ingest from the
already-parsed event, with a partial index; extracting them in SQL with ``json_extract``
on every insert would re-parse each body once per index and halve ingest throughput.
"""

from __future__ import annotations

import re

from ...dbapi import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    rid INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    received INTEGER NOT NULL,
    type TEXT NOT NULL,
    category TEXT,
    severity INTEGER NOT NULL,
    outcome TEXT,
    title TEXT,
    description TEXT,
    body TEXT NOT NULL,
    chash BLOB,
    leaf BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS events_seq ON events(tenant, seq);
CREATE UNIQUE INDEX IF NOT EXISTS events_id ON events(tenant, id);
CREATE INDEX IF NOT EXISTS events_ts ON events(tenant, ts);
CREATE INDEX IF NOT EXISTS events_type ON events(tenant, type, ts);
CREATE INDEX IF NOT EXISTS events_category ON events(tenant, category, ts);
CREATE INDEX IF NOT EXISTS events_severity ON events(tenant, severity, ts);
CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(
    title, description, content='events', content_rowid='rid', tokenize='unicode61'
);
CREATE TABLE IF NOT EXISTS idempotency (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE TABLE IF NOT EXISTS indexed_paths (
    path TEXT PRIMARY KEY,
    col TEXT NOT NULL
);
"""

_COL_SAFE = re.compile(r"[^A-Za-z0-9_]")


def column_for(path: str) -> str:
    return "p_" + _COL_SAFE.sub("_", path)


def json_path(path: str) -> str:
    """``subject.ecosystem`` → ``$."subject"."ecosystem"`` (segments are pre-validated)."""
    return "$" + "".join(f'."{seg}"' for seg in path.split("."))


def connect(path: str, *, synchronous: str = "full", readonly: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30.0,
        cached_statements=256,
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=30000")
    # Page cache per connection: the writer's holds the hot index pages of every insert;
    # readers share the OS page cache, so a small one each keeps RSS flat (4 readers).
    conn.execute(f"PRAGMA cache_size={-16384 if readonly else -65536}")
    conn.execute("PRAGMA temp_store=MEMORY")
    if readonly:
        conn.execute("PRAGMA query_only=1")
    return conn


def migrate(conn: sqlite3.Connection, indexed_paths: list[str]) -> dict[str, str]:
    """Create the schema and the declared path columns; returns path → column."""
    conn.executescript(SCHEMA)
    known = dict(conn.execute("SELECT path, col FROM indexed_paths").fetchall())
    for path in indexed_paths:
        if path in known:
            continue
        col = column_for(path)
        conn.execute("BEGIN IMMEDIATE")
        try:
            existing = {r[1] for r in conn.execute("PRAGMA table_info(events)")}
            if col not in existing:
                conn.execute(f"ALTER TABLE events ADD COLUMN {col}")
            # Backfill rows stored before the path was declared (scalars only, as at ingest).
            conn.execute(
                f"UPDATE events SET {col} = json_extract(body, ?) "
                "WHERE json_type(body, ?) IN ('text', 'integer', 'real')",
                (json_path(path), json_path(path)),
            )
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS ix_{col} ON events(tenant, {col}, ts) "
                f"WHERE {col} IS NOT NULL"
            )
            conn.execute("INSERT INTO indexed_paths(path, col) VALUES (?, ?)", (path, col))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        known[path] = col
    return known
