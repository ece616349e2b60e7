"""``SQLiteStateStore``: delivery state in a SQLite file of its own (beside the database).

One file for every process of a server: WAL lets the workers read while one writes, and
each write is a short ``BEGIN IMMEDIATE`` transaction. ``synchronous=NORMAL`` is enough:
in WAL mode a commit survives ``kill -9``; after a power cut the newest cursor moves may
be lost, which means redelivery (at least once), never loss.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from ..dbapi import sqlite3
from .integration import Attempt, DeadLetter, Integration, Progress
from .state import ATTEMPTS_KEPT, StateStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS integrations (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    format TEXT NOT NULL,
    rule TEXT NOT NULL,
    config BLOB NOT NULL,
    enabled INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    cursor INTEGER NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    retry_at REAL,
    pending_through INTEGER NOT NULL DEFAULT 0,
    single INTEGER NOT NULL DEFAULT 0,
    refusals INTEGER NOT NULL DEFAULT 0,
    last_attempt_at REAL,
    last_success_at REAL,
    last_error TEXT,
    last_error_at REAL
);
CREATE INDEX IF NOT EXISTS integrations_tenant ON integrations (tenant, created_at);
CREATE TABLE IF NOT EXISTS attempts (
    n INTEGER PRIMARY KEY,
    integration TEXT NOT NULL,
    at REAL NOT NULL,
    action TEXT NOT NULL,
    ok INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    events INTEGER NOT NULL,
    status_code INTEGER,
    latency_ms REAL NOT NULL,
    error TEXT,
    message_id TEXT NOT NULL,
    response TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_integration ON attempts (integration, n);
CREATE TABLE IF NOT EXISTS dead_letters (
    integration TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    dead_at REAL NOT NULL,
    redeliver INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (integration, seq)
) WITHOUT ROWID;
"""

_COLUMNS = ("id, tenant, name, kind, format, rule, config, enabled, created_at, updated_at, "
            "cursor, failures, retry_at, pending_through, single, last_attempt_at, "
            "last_success_at, last_error, last_error_at, refusals")
_ATTEMPT_COLUMNS = ("integration, at, action, ok, first_seq, last_seq, events, status_code, "
                    "latency_ms, error, message_id, response")
_LETTER_COLUMNS = "integration, seq, event_id, attempts, last_error, dead_at, redeliver"


def _integration(row: tuple[Any, ...]) -> Integration:
    return Integration(
        id=row[0], tenant=row[1], name=row[2], kind=row[3], format=row[4], rule=row[5],
        config=orjson.loads(row[6]), enabled=bool(row[7]), created_at=row[8],
        updated_at=row[9],
        progress=Progress(cursor=row[10], failures=row[11], retry_at=row[12],
                          pending_through=row[13], single=row[14], refusals=row[19]),
        last_attempt_at=row[15], last_success_at=row[16], last_error=row[17],
        last_error_at=row[18])


def _attempt(row: tuple[Any, ...]) -> Attempt:
    return Attempt(integration_id=row[0], at=row[1], action=row[2], ok=bool(row[3]),
                   first_seq=row[4], last_seq=row[5], events=row[6], status_code=row[7],
                   latency_ms=row[8], error=row[9], message_id=row[10], response=row[11])


def _letter(row: tuple[Any, ...]) -> DeadLetter:
    return DeadLetter(integration_id=row[0], seq=row[1], event_id=row[2], attempts=row[3],
                      last_error=row[4], dead_at=row[5], redeliver_requested=bool(row[6]))


class SQLiteStateStore(StateStore):
    def __init__(self, path: str | Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Configs hold receivers' secrets: readable by the server's user only.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        self._conn = sqlite3.connect(str(path), isolation_level=None,
                                     check_same_thread=False, timeout=30.0)
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)
        self._lock = threading.RLock()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def create(self, integration: Integration) -> None:
        i, p = integration, integration.progress
        with self._tx() as c:
            c.execute(f"INSERT INTO integrations ({_COLUMNS}) VALUES "
                      "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                      (i.id, i.tenant, i.name, i.kind, i.format, i.rule, orjson.dumps(i.config),
                       int(i.enabled), i.created_at, i.updated_at, p.cursor, p.failures,
                       p.retry_at, p.pending_through, p.single, i.last_attempt_at,
                       i.last_success_at, i.last_error, i.last_error_at, p.refusals))

    def get(self, tenant: str, integration_id: str) -> Integration | None:
        rows = self._rows(f"SELECT {_COLUMNS} FROM integrations WHERE tenant = ? AND id = ?",
                          (tenant, integration_id))
        return _integration(rows[0]) if rows else None

    def by_tenant(self, tenant: str) -> list[Integration]:
        return [_integration(r) for r in self._rows(
            f"SELECT {_COLUMNS} FROM integrations WHERE tenant = ? ORDER BY created_at, id",
            (tenant,))]

    def all(self) -> list[Integration]:
        return [_integration(r) for r in self._rows(
            f"SELECT {_COLUMNS} FROM integrations ORDER BY created_at, id")]

    def update(self, tenant: str, integration_id: str, changes: dict[str, Any],
               at: float) -> Integration | None:
        columns = {"name", "rule", "format", "config", "enabled"}
        assert set(changes) <= columns, changes
        values = {k: orjson.dumps(v) if k == "config" else int(v) if k == "enabled" else v
                  for k, v in changes.items()}
        sets = "".join(f"{k} = ?, " for k in values)
        with self._tx() as c:
            c.execute(f"UPDATE integrations SET {sets}updated_at = ?, retry_at = NULL "
                      "WHERE tenant = ? AND id = ?",
                      (*values.values(), at, tenant, integration_id))
        return self.get(tenant, integration_id)

    def delete(self, tenant: str, integration_id: str) -> bool:
        with self._tx() as c:
            gone = c.execute("DELETE FROM integrations WHERE tenant = ? AND id = ?",
                             (tenant, integration_id)).rowcount
            if gone:
                c.execute("DELETE FROM attempts WHERE integration = ?", (integration_id,))
                c.execute("DELETE FROM dead_letters WHERE integration = ?", (integration_id,))
        return bool(gone)

    def _insert_attempt(self, c: sqlite3.Connection, a: Attempt) -> None:
        n = c.execute(f"INSERT INTO attempts ({_ATTEMPT_COLUMNS}) VALUES "
                      "(?,?,?,?,?,?,?,?,?,?,?,?)",
                      (a.integration_id, a.at, a.action, int(a.ok), a.first_seq, a.last_seq,
                       a.events, a.status_code, a.latency_ms, a.error, a.message_id,
                       a.response)).lastrowid
        assert n is not None
        if n % 50 == 0:  # trimming now and then keeps the table within ~ATTEMPTS_KEPT + 50
            c.execute("DELETE FROM attempts WHERE integration = ? AND n <= (SELECT n FROM "
                      "attempts WHERE integration = ? ORDER BY n DESC LIMIT 1 OFFSET ?)",
                      (a.integration_id, a.integration_id, ATTEMPTS_KEPT))

    def save_progress(self, integration_id: str, expect_cursor: int, progress: Progress, *,
                      attempt: Attempt | None = None,
                      dead: Sequence[DeadLetter] = ()) -> bool:
        p = progress
        with self._tx() as c:
            moved = c.execute(
                "UPDATE integrations SET cursor = ?, failures = ?, retry_at = ?, "
                "pending_through = ?, single = ?, refusals = ? WHERE id = ? AND cursor = ?",
                (p.cursor, p.failures, p.retry_at, p.pending_through, p.single, p.refusals,
                 integration_id, expect_cursor)).rowcount
            if not moved:
                return False
            if attempt is not None:
                self._insert_attempt(c, attempt)
                if attempt.ok:
                    c.execute("UPDATE integrations SET last_attempt_at = ?, "
                              "last_success_at = ? WHERE id = ?",
                              (attempt.at, attempt.at, integration_id))
                else:
                    c.execute("UPDATE integrations SET last_attempt_at = ?, last_error = ?, "
                              "last_error_at = ? WHERE id = ?",
                              (attempt.at, attempt.error, attempt.at, integration_id))
            c.executemany(
                f"INSERT OR REPLACE INTO dead_letters ({_LETTER_COLUMNS}) "
                "VALUES (?,?,?,?,?,?,0)",
                [(d.integration_id, d.seq, d.event_id, d.attempts, d.last_error, d.dead_at)
                 for d in dead])
        return True

    def add_attempt(self, attempt: Attempt) -> None:
        with self._tx() as c:
            self._insert_attempt(c, attempt)

    def attempts(self, tenant: str, integration_id: str, limit: int = 50) -> list[Attempt]:
        return [_attempt(r) for r in self._rows(
            f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE integration = "
            "(SELECT id FROM integrations WHERE tenant = ? AND id = ?) ORDER BY n DESC LIMIT ?",
            (tenant, integration_id, limit))]

    def dead_letters(self, tenant: str, integration_id: str, *, after_seq: int = 0,
                     limit: int = 100) -> list[DeadLetter]:
        return [_letter(r) for r in self._rows(
            f"SELECT {_LETTER_COLUMNS} FROM dead_letters WHERE integration = "
            "(SELECT id FROM integrations WHERE tenant = ? AND id = ?) AND seq > ? "
            "ORDER BY seq LIMIT ?", (tenant, integration_id, after_seq, limit))]

    def dead_letter_count(self, integration_id: str) -> int:
        return int(self._rows("SELECT count(*) FROM dead_letters WHERE integration = ?",
                              (integration_id,))[0][0])

    def request_redelivery(self, tenant: str, integration_id: str,
                           seqs: Sequence[int] | None) -> int:
        owned = "integration = (SELECT id FROM integrations WHERE tenant = ? AND id = ?)"
        with self._tx() as c:
            if seqs is None:
                return int(c.execute(f"UPDATE dead_letters SET redeliver = 1 WHERE {owned}",
                                     (tenant, integration_id)).rowcount)
            return sum(c.execute(f"UPDATE dead_letters SET redeliver = 1 WHERE {owned} "
                                 "AND seq = ?", (tenant, integration_id, s)).rowcount
                       for s in seqs)

    def redeliveries(self, integration_id: str, limit: int) -> list[DeadLetter]:
        return [_letter(r) for r in self._rows(
            f"SELECT {_LETTER_COLUMNS} FROM dead_letters WHERE integration = ? "
            "AND redeliver = 1 ORDER BY seq LIMIT ?", (integration_id, limit))]

    def finish_redelivery(self, letter: DeadLetter, attempt: Attempt) -> None:
        with self._tx() as c:
            self._insert_attempt(c, attempt)
            if attempt.ok:
                c.execute("DELETE FROM dead_letters WHERE integration = ? AND seq = ?",
                          (letter.integration_id, letter.seq))
            else:
                c.execute("UPDATE dead_letters SET redeliver = 0, attempts = attempts + 1, "
                          "last_error = ? WHERE integration = ? AND seq = ?",
                          (attempt.error or "", letter.integration_id, letter.seq))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


__all__ = ["SQLiteStateStore"]
