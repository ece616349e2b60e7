"""Shared harness for the red-team attacks: a real file built through the real store, a
pristine copy per attack, and reads through the real store (what a reader would see)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from auditstream.auth.catalog import Catalog
from auditstream.dbapi import sqlite3
from auditstream.integrity.canonical import canonical_bytes
from auditstream.integrity.checkpoint import Signer
from auditstream.integrity.keys import load_or_create_signer
from auditstream.integrity.merkle import leaf_hash
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us, now_us
from auditstream.query.filter import All
from auditstream.store.base import AggregateSpec, EventQuery
from auditstream.store.sqlite import SQLiteEventStore
from auditstream.store.sqlite.audit import verify_db

PATHS = ["actor.id"]
HOUR = 3_600_000_000


def event(tenant: str, i: int, **extra: Any) -> dict[str, Any]:
    now = format_us(now_us())
    ev = {"id": new_event_id(), "tenant": tenant, "timestamp": now, "received_at": now,
          "type": "login", "severity": "info", "outcome": "success",
          "title": f"login {i}", "description": "user signed in",
          "actor": {"id": f"u{i}"}, "context": {"user_id": f"user{i % 3}"},
          "llm": {"model": "m", "cost_usd": 1}, "tags": ["t"], "metadata": {"n": i}}
    ev.update(extra)
    return ev


def build(db: Path) -> Signer:
    """acme: 20 events committed 10 at a time; seq 5 redacted (record at 21); one event with
    Idempotency-Key 'k1' (seq 22); globex: 1 event."""
    signer = load_or_create_signer(db, "auditstream.local")
    cat = Catalog(db)
    cat.create_tenant("acme")
    cat.create_tenant("globex")
    cat.close()

    async def run() -> None:
        store = SQLiteEventStore(db, signer=signer, indexed_paths=PATHS)
        for start in (0, 10):
            await store.append("acme", [event("acme", i) for i in range(start, start + 10)])
        await store.append("globex", [event("globex", 0)])
        (victim,) = sqlite3.connect(db).execute(
            "SELECT id FROM events WHERE tenant='acme' AND seq=5").fetchone()
        await store.redact("acme", victim, "erasure request", actor={"type": "test"})
        await store.append("acme", [event("acme", 99)], idempotency_key="k1",
                           request_hash="h1")
        await store.close()

    asyncio.run(run())
    return signer


def copy(src: Path, dst: Path) -> Path:
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    a.backup(b)
    a.close()
    b.close()
    key = src.with_name(src.name + ".signing-key")
    dst.with_name(dst.name + ".signing-key").write_bytes(key.read_bytes())
    return dst


def body(conn: sqlite3.Connection, seq: int, tenant: str = "acme") -> dict[str, Any]:
    return dict(orjson.loads(conn.execute(
        "SELECT body FROM events WHERE tenant=? AND seq=?", (tenant, seq)).fetchone()[0]))


def put_raw(conn: sqlite3.Connection, seq: int, raw: str, tenant: str = "acme") -> None:
    conn.execute("UPDATE events SET body=? WHERE tenant=? AND seq=?", (raw, tenant, seq))


def verify(db: Path, signer: Signer) -> list[str]:
    return [str(p) for p in verify_db(db, signer.verifier()).problems]


def read(db: Path, fn: Any, signer: Any = None) -> Any:
    """Run ``fn(store)`` (a coroutine function) against a fresh real store on ``db`` (it
    can write only with the signer: the file keeps a signed log)."""
    async def run() -> Any:
        store = SQLiteEventStore(db, indexed_paths=PATHS, signer=signer)
        try:
            return await fn(store)
        finally:
            await store.close()
    return asyncio.run(run())


async def seqs_matching(store: SQLiteEventStore, tenant: str, where: Any) -> set[int]:
    page = await store.query(tenant, EventQuery(filter=where, limit=1000))
    return {e["seq"] for e in page.events}


__all__ = ["All", "AggregateSpec", "EventQuery", "HOUR", "PATHS", "body", "build",
           "canonical_bytes", "copy", "event", "seqs_matching", "leaf_hash", "put_raw",
           "read", "verify"]
