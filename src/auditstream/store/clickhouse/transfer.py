"""From the log to the index: committed entries flow from the SQLite log into ClickHouse.

``Indexer.transfer(notices)`` runs on the writer's thread right after each log commit,
before the commit's notices reach anyone (``IndexedFeed``): it takes the tenants' new
entries (as the writer handed them over, ``committed``, or else read from the log),
inserts them into ``events`` in one block, then moves each tenant's visibility watermark.
Guarantees:

* **At least once.** An entry is in the index before its seq is below the watermark. A
  crash between the log commit and the index insert leaves the watermark behind the log:
  ``catch_up`` (every open) sends the gap again.
* **No observable duplicate.** Sending a range again writes rows ClickHouse already has;
  ``events`` is a ReplacingMergeTree on (tenant, ts, seq) read with FINAL, so a reader sees
  one row per event whatever was sent twice.
* **Redactions travel with their record.** A redaction record (its own entry) names the
  seqs it blanked; sending the record sends their stubs too, as a later version (``ver``
  = the record's seq) that replaces the content in every read.
* **Counts travel with their events**: the hourly counts of the entries (``rollup``) are
  inserted after them and before the watermark.
* **Readers never see N+1 before N.** The watermark moves only after the insert that holds
  every seq up to it returned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from ...dbapi import sqlite3
from ...integrity.redaction import RECORD_TYPE
from ...log.feed import CommitFeed
from ...log.prepared import PathSegments, PreparedEvent, path_values, segments
from ...log.protocol import CommitNotice
from ...log.storage import Entry
from ...model.severity import RANK
from ...model.times import parse_us
from ..sqlite.logstorage import dropped_upto
from ..sqlite.schema import connect
from . import rollup
from .compile import words_of
from .engine import INSERT_SETTINGS, Engine

log = logging.getLogger("auditstream")

COLUMNS = ["tenant", "seq", "ts", "received", "ver", "id", "type", "category", "sev",
           "outcome", "body", "words"]
_STRING = frozenset({str})
#: Entries read from the log and inserted per block (bounds the writer's memory).
BATCH = 50_000
#: How long (seconds) a watermark this process moved stands for ClickHouse's in reads.
OWN_MARK_S = 1.0


def index_row(tenant: str, seq: int, body: bytes, ver: int = 0,
              paths: PathSegments | None = None) -> list[Any]:
    """The ``COLUMNS`` of an entry, then the string at each of ``paths`` (their columns:
    ``engine.PATH_COLUMN``)."""
    ev = orjson.loads(body)
    return [tenant, seq, parse_us(ev["timestamp"]), parse_us(ev["received_at"]), ver, ev["id"],
            ev["type"], ev.get("category"), RANK.get(ev.get("severity", "info"), 0),
            ev.get("outcome"), body, words_of(ev.get("title"), ev.get("description")),
            *path_values(ev, paths or [], _STRING)]


class Indexer:
    def __init__(self, engine: Engine, log_path: str, *,
                 hook: Callable[[str], None] | None = None, block: int = rollup.BLOCK,
                 path_columns: dict[str, str] | None = None):
        """``path_columns``: path → column of the index's path columns, whose values the
        transfer sends (a column it does not know of computes its DEFAULT)."""
        self.engine = engine
        self.log_path = log_path
        self.path_names = list(path_columns or {})
        self.paths = segments(self.path_names)
        self.columns = COLUMNS + list((path_columns or {}).values())
        #: Where each of ``paths`` is in a prepared event's ``paths`` (``log_paths``).
        self._entry_paths: list[int] | None = None
        self.rollup = rollup.Rollup(block)
        #: Called with "insert" between the log commit and the index insert, and with
        #: "watermark" between the insert and the watermark (a test kills the process there).
        self.hook = hook
        self._marks: dict[str, int] = {}
        #: The watermarks this process moved, with when (``own_mark``).
        self._own: dict[str, tuple[int, float]] = {}
        self._conn: sqlite3.Connection | None = None
        #: Called on the writer's thread with the ``(tenant, watermark)`` pairs each
        #: transfer confirmed (the store drops the log's bodies there).
        self.on_confirmed: Callable[[list[tuple[str, int]]], None] | None = None
        #: tenant → entries the log committed and no transfer took yet (``committed``).
        self._fresh: dict[str, list[Entry]] = {}

    def log_paths(self, declared: list[str]) -> None:
        """The paths the log's writer prepares events with: entries it hands over
        (``committed``) can be sent as they are if they cover every path column."""
        where = {path: i for i, path in enumerate(declared)}
        self._entry_paths = ([where[p] for p in self.path_names]
                             if all(p in where for p in self.path_names) else None)

    def committed(self, appended: list[tuple[str, list[Entry]]]) -> None:
        """The entries a log commit appended (``SQLiteLogStorage.on_committed``, on the
        writer's thread): the transfer of their seqs sends them as they are, instead of
        reading and parsing the log's copy again (a fifth of a transfer's time)."""
        for tenant, entries in appended:
            self._fresh.setdefault(tenant, []).extend(entries)

    def _log(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.log_path, readonly=True)
        return self._conn

    def watermark(self, tenant: str) -> int:
        if tenant not in self._marks:
            self._marks[tenant] = read_watermark(self.engine, tenant)
        return self._marks[tenant]

    def own_mark(self, tenant: str) -> int | None:
        """The watermark this process last moved for ``tenant``, if within ``OWN_MARK_S``:
        readers may use it instead of reading ClickHouse. It is never ahead of
        ClickHouse's (it moves after the insert); it may lag a write by another process
        (a CLI on the same log) for that long, as the live stream's poll does."""
        own = self._own.get(tenant)
        if own is None or time.monotonic() - own[1] > OWN_MARK_S:
            return None
        return own[0]

    def catch_up(self) -> int:
        """Send whatever the log committed beyond each tenant's watermark (after a crash,
        or a write by another process on the same log); returns how many entries."""
        tails = self._log().execute(
            "SELECT tenant, MAX(seq) FROM events GROUP BY tenant").fetchall()
        with self.engine.client() as c:
            marks = dict(c.query(f"SELECT tenant, max(seq) FROM {self.engine.db}.watermarks "
                                 "GROUP BY tenant").result_rows)
        self._marks.update({t: int(s) for t, s in marks.items()})
        behind = [CommitNotice(t, int(s)) for t, s in tails if int(s) > self._marks.get(t, 0)]
        n = sum(n.last_seq - self._marks.get(n.tenant, 0) for n in behind)
        if behind:
            log.info("index: catching up %d entries of %d tenants from the log", n, len(behind))
            self.transfer(behind)
        return n

    def transfer(self, notices: list[CommitNotice]) -> None:
        if self.hook is not None:
            self.hook("insert")
        conn = self._log()
        rows: list[list[Any]] = []
        counts: list[list[Any]] = []
        marks: list[tuple[str, int]] = []
        for notice in notices:
            tenant, mark, hi = notice.tenant, self.watermark(notice.tenant), notice.last_seq
            # All of them: a notice covers its commit's last seq (both on this thread).
            fresh = self._fresh.pop(tenant, [])
            if hi <= mark:
                continue
            if self._sendable(fresh, mark, hi):
                chunks: Iterable[list[tuple[int, bytes, list[Any]]]] = [
                    [(seq, body, self._entry_row(tenant, ev, seq, body))
                     for ev, seq, body, _ in fresh]]
            else:
                # A range the log dropped was in the index already (drops follow the
                # watermark): a watermark behind it (a restored index, another writer of
                # the same log) sends on from the drop, as the bodies before it are not
                # here.
                chunks = self._log_rows(conn, tenant, max(mark, dropped_upto(conn, tenant)), hi)
            for chunk in chunks:
                counted = []
                for seq, body, row in chunk:
                    rows.append(row)
                    counted.append((seq, row[2], *row[6:10]))
                    if row[6] == RECORD_TYPE:
                        rows += self._stubs(conn, tenant, seq, body)
                counts += self.rollup.rows(conn, tenant, counted)
                if len(rows) >= BATCH:
                    self._insert(rows, counts)
                    rows, counts = [], []
            marks.append((tenant, hi))
        self._insert(rows, counts)
        if marks:
            if self.hook is not None:
                self.hook("watermark")
            self.engine.run(lambda c: c.insert(f"{self.engine.db}.watermarks",
                                               [list(m) for m in marks],
                                               column_names=["tenant", "seq"]))
            self._marks.update(dict(marks))
            now = time.monotonic()
            self._own.update({t: (m, now) for t, m in marks})
            if self.on_confirmed is not None:
                self.on_confirmed(marks)

    def _sendable(self, fresh: list[Entry], mark: int, hi: int) -> bool:
        """Whether ``fresh`` is exactly seqs mark+1..hi, for known path columns only."""
        return (self._entry_paths is not None and len(fresh) == hi - mark
                and fresh[0][1] == mark + 1 and fresh[-1][1] == hi)

    def _entry_row(self, tenant: str, ev: PreparedEvent, seq: int, body: bytes) -> list[Any]:
        """``index_row`` from what the log's writer parsed (``log.prepared.row_values``)."""
        id_, ts, received, type_, category, sev, outcome = ev.columns
        assert self._entry_paths is not None
        return [tenant, seq, ts, received, 0, id_, type_, category, sev, outcome, body,
                words_of(*ev.text),
                *[v if type(v := ev.paths[i]) is str else None for i in self._entry_paths]]

    def _log_rows(self, conn: sqlite3.Connection, tenant: str, lo: int, hi: int
                  ) -> Iterator[list[tuple[int, bytes, list[Any]]]]:
        """Seqs lo+1..hi as the log holds them, parsed, ``BATCH`` at a time."""
        while lo < hi:
            chunk = conn.execute(
                "SELECT seq, CAST(body AS BLOB) FROM events WHERE tenant = ? AND seq > ? "
                "AND seq <= ? ORDER BY seq LIMIT ?", (tenant, lo, hi, BATCH)).fetchall()
            if not chunk:
                return
            yield [(seq, bytes(body), index_row(tenant, seq, bytes(body), paths=self.paths))
                   for seq, body in chunk]
            lo = chunk[-1][0]

    def _stubs(self, conn: sqlite3.Connection, tenant: str, by: int,
               record: bytes) -> list[list[Any]]:
        claim = orjson.loads(record).get("payload", {}).get("redaction", {})
        first, last = claim.get("first_seq"), claim.get("last_seq")
        if not isinstance(first, int) or not isinstance(last, int):
            return []
        out = []
        for seq, body in conn.execute(
                "SELECT seq, CAST(body AS BLOB) FROM events WHERE tenant = ? AND seq >= ? "
                # A dropped body ('') is no stub, and no JSON.
                "AND seq <= ? AND CASE WHEN body = '' THEN NULL "
                "ELSE json_extract(body, '$.redacted.by') END = ?",
                (tenant, first, last, by)):
            out.append(index_row(tenant, seq, bytes(body), ver=by, paths=self.paths))
        return out

    def _insert(self, rows: list[list[Any]], counts: list[list[Any]]) -> None:
        """The events, then their counts: both before the watermark covers them."""
        if rows:
            self.engine.run(lambda c: c.insert(f"{self.engine.db}.events", rows,
                                               column_names=self.columns,
                                               settings=INSERT_SETTINGS))
        if counts:
            name = rollup.table(self.rollup.block)
            self.engine.run(lambda c: c.insert(f"{self.engine.db}.{name}", counts,
                                               column_names=rollup.COLUMNS))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def read_watermark(engine: Engine, tenant: str) -> int:
    with engine.client() as c:
        rows = c.query(f"SELECT max(seq) FROM {engine.db}.watermarks WHERE tenant = {{t:String}}",
                       parameters={"t": tenant}).result_rows
    return int(rows[0][0] or 0)


class IndexedFeed(CommitFeed):
    """The store's commit feed: a log commit's notices are published once the index has
    its entries (so whoever wakes on ``(tenant, N)`` and reads the index sees 1..N).

    A failed transfer is retried until it succeeds: the writer waits, its queue fills and
    ingest answers 503; nothing is acknowledged that readers cannot find (a store closed
    meanwhile waits too, for the same reason)."""

    RETRY_S = (0.05, 0.2, 1.0, 5.0)

    def __init__(self) -> None:
        super().__init__()
        self.indexer: Indexer | None = None

    def publish(self, notices: list[CommitNotice]) -> None:
        if self.indexer is not None:
            attempt = 0
            while True:
                try:
                    self.indexer.transfer(notices)
                    break
                except Exception:
                    log.exception("index: transfer failed; retrying")
                    time.sleep(self.RETRY_S[min(attempt, len(self.RETRY_S) - 1)])
                    attempt += 1
        super().publish(notices)


__all__ = ["COLUMNS", "IndexedFeed", "Indexer", "index_row", "read_watermark"]
