"""Schema of the SQLite backend: tables, declared path columns, and an event's row.

Everything a query reads besides the body is derived from the body by
``log.prepared.row_values`` (one function, used where events are prepared and re-run by
``verify``):

* core columns (``ts``, ``type``, ``severity`` …) for filters, sorts and rollups;
* declared dotted paths get a column of their own (``p_<path>``) with a partial index;
  extracting them in SQL with ``json_extract`` on every insert would re-parse each body
  once per index and halve ingest throughput;
* ``events_fts``, an FTS5 table over title and description with its own content (rowid =
  the event's ``rid``). Its own content, rather than pointing at the events table, is
  what lets ``PRAGMA integrity_check`` prove the inverted index against that content on a
  read-only file; ``verify`` then compares the content with the bodies.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
from collections.abc import Iterator
from pathlib import Path

from ...dbapi import sqlite3

EVENTS = """
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
    body TEXT NOT NULL,
    leaf BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS events_seq ON events(tenant, seq);
CREATE UNIQUE INDEX IF NOT EXISTS events_id ON events(tenant, id);
CREATE INDEX IF NOT EXISTS events_ts ON events(tenant, ts);
CREATE INDEX IF NOT EXISTS events_type ON events(tenant, type, ts);
CREATE INDEX IF NOT EXISTS events_category ON events(tenant, category, ts);
CREATE INDEX IF NOT EXISTS events_severity ON events(tenant, severity, ts);
CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(
    title, description, tokenize='unicode61'
);
"""

SCHEMA = EVENTS + """
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


@contextlib.contextmanager
def migration_lock(db: str) -> Iterator[None]:
    """Serialise migrations of processes that open one file at the same instant (ten
    servers started together on a fresh file each try to create the same tables and
    declared columns; SQLite's own locking turns the losers' ALTERs into errors)."""
    path = Path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def migrate(conn: sqlite3.Connection, indexed_paths: list[str]) -> dict[str, str]:
    """Create the schema and the declared path columns; returns path → column. Hold
    ``migration_lock`` around it when other processes may open the file meanwhile."""
    _upgrade_v1(conn)
    conn.executescript(SCHEMA)
    _add_idempotency_signature(conn)
    known = dict(conn.execute("SELECT path, col FROM indexed_paths").fetchall())
    for path in indexed_paths:
        if path in known:
            continue
        col = column_for(path)
        conn.execute("BEGIN IMMEDIATE")
        try:
            add_path_column(conn, path, col)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        known[path] = col
    return known


def add_path_column(conn: sqlite3.Connection, path: str, col: str) -> None:
    """Add, backfill (scalars only, as at ingest) and index one declared path."""
    existing = {r[1] for r in conn.execute("PRAGMA table_info(events)")}
    if col not in existing:
        conn.execute(f"ALTER TABLE events ADD COLUMN {col}")
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


def _add_idempotency_signature(conn: sqlite3.Connection) -> None:
    """The signature column of stored Idempotency-Key answers (``ledger.idempotency_message``)
    came after the table; new files get it the same way, so every file has one schema."""
    if "sig" not in {r[1] for r in conn.execute("PRAGMA table_info(idempotency)")}:
        conn.execute("ALTER TABLE idempotency ADD COLUMN sig BLOB")


def _upgrade_v1(conn: sqlite3.Connection) -> None:
    """Files of the first layout kept title/description/chash columns and an FTS table
    over them; rebuild them into this layout (one transaction, once)."""
    cols = {r[1] for r in conn.execute("PRAGMA table_info(events)")}
    if "chash" not in cols:
        return
    paths = conn.execute("SELECT path, col FROM indexed_paths ORDER BY rowid").fetchall()
    conn.execute("BEGIN IMMEDIATE")
    try:
        for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
                "AND sql IS NOT NULL").fetchall():
            conn.execute(f"DROP INDEX {name}")
        conn.execute("DROP TABLE IF EXISTS events_fts")
        conn.execute("ALTER TABLE events RENAME TO events_v1")
        for stmt in EVENTS.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        conn.execute(
            "INSERT INTO events(rid, tenant, seq, id, ts, received, type, category, severity, "
            "outcome, body, leaf) SELECT rid, tenant, seq, id, ts, received, type, category, "
            "severity, outcome, body, leaf FROM events_v1")
        conn.execute(
            "INSERT INTO events_fts(rowid, title, description) SELECT rid, title, description "
            "FROM events_v1 WHERE title IS NOT NULL OR description IS NOT NULL")
        conn.execute("DROP TABLE events_v1")
        conn.execute("DELETE FROM indexed_paths")
        for path, col in paths:
            add_path_column(conn, path, col)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def expected_schema(paths: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """name → (type, sql) of every object a file with these declared paths (in declaration
    order) must have, as this code creates it; ``verify`` compares the file with it."""
    from . import rollup
    from .logstorage import SCHEMA as LOG_SCHEMA

    mem = sqlite3.connect(":memory:", isolation_level=None)
    try:
        mem.executescript(SCHEMA + LOG_SCHEMA + rollup.SCHEMA)
        _add_idempotency_signature(mem)
        for path, col in paths:
            add_path_column(mem, path, col)
        return {name: (kind, sql) for kind, name, sql in mem.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL")}
    finally:
        mem.close()
