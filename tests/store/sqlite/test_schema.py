"""Files of the first layout (title/description/chash columns, an FTS index over the
events table) are rebuilt into the current one on open, keeping what queries find."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from auditstream.dbapi import sqlite3
from auditstream.query.filter import And, Eq, Text
from auditstream.store.base import EventQuery
from auditstream.store.sqlite import SQLiteEventStore
from auditstream.store.sqlite.audit import check_schema

#: The first layout, as commit fc4db9c created it.
V1_SCHEMA = """
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
ALTER TABLE events ADD COLUMN p_actor_id;
CREATE INDEX ix_p_actor_id ON events(tenant, p_actor_id, ts) WHERE p_actor_id IS NOT NULL;
INSERT INTO indexed_paths VALUES ('actor.id', 'p_actor_id');
"""


def test_a_first_layout_file_is_upgraded(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    conn = sqlite3.connect(db)
    conn.executescript(V1_SCHEMA)
    for i, (title, actor) in enumerate([("Nordic Star went dark", "ais"),
                                        ("Blocked left-padd", "alice")], start=1):
        ev = {"id": f"evt_{i}", "tenant": "acme", "seq": i, "type": "x", "severity": "info",
              "timestamp": "2026-01-01T00:00:00Z", "received_at": "2026-01-01T00:00:00Z",
              "title": title, "actor": {"id": actor}}
        conn.execute("INSERT INTO events(rid, tenant, seq, id, ts, received, type, severity, "
                     "title, body, p_actor_id) VALUES (?, 'acme', ?, ?, 0, 0, 'x', 0, ?, ?, ?)",
                     (i, i, ev["id"], title, orjson.dumps(ev).decode(), actor))
        conn.execute("INSERT INTO events_fts(rowid, title) VALUES (?, ?)", (i, title))
    conn.commit()
    conn.close()

    async def run() -> list[list[str]]:
        store = SQLiteEventStore(db, indexed_paths=["actor.id"])
        try:
            found = []
            for where in (Text(("nordic",)), Eq("actor.id", ("alice",)),
                          And((Text(("blocked",)), Eq("actor.id", ("alice",))))):
                page = await store.query("acme", EventQuery(filter=where))
                found.append([e["id"] for e in page.events])
            return found
        finally:
            await store.close()

    assert asyncio.run(run()) == [["evt_1"], ["evt_2"], ["evt_2"]]
    conn = sqlite3.connect(db)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(events)")}
    assert not cols & {"title", "description", "chash"} and "p_actor_id" in cols
    assert check_schema(conn, [("actor.id", "p_actor_id")]) == []
    conn.close()
