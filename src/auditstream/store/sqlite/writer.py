"""The single writer thread: group commit of many appends in one transaction.

SQLite allows one writer at a time, and a commit (with its fsync) costs the same for one
row or ten thousand. So every append is queued here; the writer drains whatever is
waiting, runs each append that can be refused inside its own SAVEPOINT (one bad append
fails alone), commits once, and only then resolves the callers' futures: an answer is
never sent before the commit that makes it durable. If the group as a whole fails for a
reason no savepoint caught, each job is retried in a transaction of its own, so one
poisonous job cannot take its neighbours down with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...dbapi import sqlite3
from ...errors import Conflict, ProblemError, StoreClosed, StoreError, ValidationFailed
from ...integrity import redaction
from ...integrity.canonical import CanonicalizationError, canonical_json_bytes
from ...integrity.merkle import leaf_hash
from ...model.ids import new_event_id
from ...model.times import format_us
from ..base import Appended
from . import rollup
from .bulk import insert_rows
from .ledger import Ledger
from .schema import PathSegments, row_values, segments

log = logging.getLogger("auditstream")

#: Fields the server sets; ignored when checking that a re-sent id has the same content.
SERVER_FIELDS = frozenset({"seq", "tenant", "received_at"})


@dataclass
class AppendJob:
    tenant: str
    events: list[dict[str, Any]]
    client_ids: frozenset[int]
    idempotency_key: str | None
    request_hash: str | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[Appended]]
    prepared: list[Prepared] = field(default_factory=list)
    result: list[Appended] = field(default_factory=list)
    error: BaseException | None = None


@dataclass
class RedactJob:
    """Blank one event (``event_id``) or the events at ``seqs`` (a purge chunk), and record
    it in the tenant's log (see ``integrity.redaction``)."""

    tenant: str
    reason: str
    actor: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[dict[str, Any] | None]
    event_id: str | None = None
    seqs: list[int] = field(default_factory=list)
    before: str | None = None  # the purge cutoff, recorded in the record
    events: list[dict[str, Any]] = field(default_factory=list)  # none: counts 0 in a group
    result: dict[str, Any] | None = None
    error: BaseException | None = None


# Events are serialised before they reach the writer thread, with this number standing in
# for the seq only the writer knows; the writer splices the real one in. Random per
# process and 15 digits: canonical JSON prints it as is, and no producer can guess it.
SEQ_PLACEHOLDER = random.SystemRandom().randrange(10**14, 10**15)
SEQ_MARK = b'"seq":%d' % SEQ_PLACEHOLDER

#: What the writer needs of an event besides its seq: the body with the placeholder (None:
#: serialise in the writer), the column values, the declared paths' scalars, and the
#: (title, description) of its full-text row.
Prepared = tuple[bytes | None, tuple[Any, ...], tuple[Any, ...], tuple[str | None, str | None]]


def prepare(
    events: list[dict[str, Any]], *, canonical: bool, path_segments: PathSegments,
) -> list[Prepared]:
    """Everything about each row that does not depend on its seq; runs off the writer thread.

    Raises ``ValidationFailed`` for an event RFC 8785 cannot represent.
    """
    out: list[Prepared] = []
    received_us: dict[str, int] = {}
    for i, ev in enumerate(events):
        ev["seq"] = SEQ_PLACEHOLDER
        if canonical:
            try:
                body = canonical_json_bytes(ev)
            except CanonicalizationError as exc:
                raise ValidationFailed("an event cannot be canonicalised (RFC 8785)", errors=[
                    {"index": i, "field": "(event)", "reason": str(exc)}]) from None
        else:
            body = orjson.dumps(ev)
        fields, paths, text = row_values(ev, path_segments, received_us)
        out.append((body if body.count(SEQ_MARK) == 1 else None, fields, paths, text))
    return out


def content_key(event: dict[str, Any]) -> bytes:
    """What must match for a re-sent client id to count as the same event: everything but
    the server's fields, and the timestamp too when the server filled it in (the retry of
    an event sent without one gets a new one)."""
    ignore = SERVER_FIELDS
    if event.get("timestamp") == event.get("received_at"):
        ignore = ignore | {"timestamp"}
    doc = {k: v for k, v in event.items() if k not in ignore}
    try:
        raw = canonical_json_bytes(doc)
    except CanonicalizationError:  # stored with integrity off: any stable form will do
        raw = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).digest()


class Writer(threading.Thread):
    """Owns the write connection. ``submit`` from the event loop; results come back there."""

    #: Most events committed in one transaction; bounds latency of a group.
    MAX_GROUP_EVENTS = 20_000

    def __init__(
        self,
        conn: sqlite3.Connection,
        path_columns: dict[str, str],
        *,
        idempotency_us: int,
        on_commit: Callable[[int, int], None] | None = None,
        ledger: Ledger | None = None,
    ):
        super().__init__(name="auditstream-writer", daemon=True)
        self.conn = conn
        self.ledger = ledger
        self.path_items = list(path_columns.items())
        self.path_segments = segments([p for p, _ in self.path_items])
        self.idempotency_us = idempotency_us
        self.on_commit = on_commit
        self.jobs: queue.SimpleQueue[AppendJob | RedactJob | None] = queue.SimpleQueue()
        self.next_seq: dict[str, int] = {}
        # Planner statistics: without them SQLite picks the time index over a selective
        # one on cursor pages (100x slower at 1M rows). Re-analysed as the table grows;
        # ``stats_version`` tells readers to reopen and load the new statistics.
        self.stats_version = 0
        self.rows_at_analyze = 0
        self.written_since_analyze = 0
        self._try_analyze()
        # The writer is the only inserter, so it numbers rows itself and can give the FTS
        # rows the same rowid without reading anything back.
        self.next_rid = (conn.execute("SELECT MAX(rid) FROM events").fetchone()[0] or 0) + 1
        self.data_version = conn.execute("PRAGMA data_version").fetchone()[0]
        self.closed = False
        cols = "".join(", " + col for _, col in self.path_items)
        self.insert_head = (
            "INSERT INTO events(rid, tenant, seq, id, ts, received, type, category, severity, "
            f"outcome, body, leaf{cols})"
        )
        self.blank_paths = "".join(f", {col} = NULL" for _, col in self.path_items)

    def submit(self, job: AppendJob | RedactJob) -> None:
        if self.closed:
            raise StoreClosed("store is closed")
        self.jobs.put(job)

    def stop(self) -> None:
        self.closed = True
        self.jobs.put(None)
        self.join()

    # -- the thread --------------------------------------------------------------

    def run(self) -> None:
        stopping = False
        while not stopping:
            job = self.jobs.get()
            if job is None:
                break
            group: list[AppendJob | RedactJob] = [job]
            n = len(job.events)
            while n < self.MAX_GROUP_EVENTS:
                try:
                    nxt = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                group.append(nxt)
                n += len(nxt.events)
            self._commit_group(group)
            for job in group:
                job.loop.call_soon_threadsafe(_resolve, job)

    def _commit_group(self, group: list[AppendJob | RedactJob]) -> None:
        saved_seq, saved_rid = dict(self.next_seq), self.next_rid
        try:
            written = self._transaction(group)
        except Exception as exc:  # nothing of the group was written
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self.next_seq, self.next_rid = saved_seq, saved_rid
            if self.ledger is not None:
                self.ledger.forget()
            if len(group) > 1:
                # Find the job that failed by giving each its own transaction.
                for job in group:
                    job.error = None
                    self._commit_group([job])
                return
            if not isinstance(exc, ProblemError | StoreError):
                log.exception("append failed", exc_info=exc)
                exc = StoreError(f"append failed: {exc}")
            group[0].error = exc
        else:
            if self.on_commit is not None:
                self.on_commit(len(group), written)
            self._maybe_analyze(written)

    def _transaction(self, group: list[AppendJob | RedactJob]) -> int:
        """Apply the group in one transaction; raises (nothing committed) if it cannot."""
        conn, ledger = self.conn, self.ledger
        written = 0
        touched: set[str] = set()
        conn.execute("BEGIN IMMEDIATE")
        self._refresh_if_changed()
        for job in group:
            if isinstance(job, AppendJob) and not job.client_ids \
                    and job.idempotency_key is None:
                # Only client-chosen ids and idempotency keys can be refused here
                # (prepare() already checked the events): no savepoint needed.
                n = self._apply(job)
            else:
                conn.execute("SAVEPOINT job")
                before, before_rid = dict(self.next_seq), self.next_rid
                cr = ledger.ranges.get(job.tenant) if ledger else None
                before_cr = cr.copy() if cr is not None else None
                try:
                    n = self._apply(job) if isinstance(job, AppendJob) else self._redact(job)
                    conn.execute("RELEASE job")
                except ProblemError as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    self.next_seq, self.next_rid = before, before_rid
                    if ledger is not None:
                        if before_cr is None:
                            ledger.ranges.pop(job.tenant, None)
                        else:
                            ledger.ranges[job.tenant] = before_cr
                    job.error = exc
                    n = 0
            written += n
            if n:
                touched.add(job.tenant)
        if ledger is not None:
            for tenant in touched:
                ledger.checkpoint(tenant)
        conn.execute("COMMIT")
        return written

    def analyze(self) -> None:
        """Refresh statistics (sampled: ``analysis_limit`` keeps it to milliseconds)."""
        self.conn.execute("PRAGMA analysis_limit=1000")
        self.conn.execute("ANALYZE")
        row = self.conn.execute("SELECT MAX(rid) FROM events").fetchone()
        self.rows_at_analyze = row[0] or 0
        self.written_since_analyze = 0
        self.stats_version += 1

    def _try_analyze(self) -> None:
        try:
            self.analyze()
        except sqlite3.OperationalError as exc:  # e.g. a full disk: statistics can wait,
            log.warning("ANALYZE failed (%s); planner statistics not refreshed", exc)  # reads not

    def _maybe_analyze(self, written: int) -> None:
        self.written_since_analyze += written
        if self.written_since_analyze >= max(5_000, self.rows_at_analyze // 2):
            self._try_analyze()

    def _refresh_if_changed(self) -> None:
        """Another process (the CLI, say) wrote to the file: forget cached counters.

        ``data_version`` changes only when *another* connection commits, and we hold the
        write lock here, so what we read now stays true until our commit.
        """
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self.data_version:
            self.data_version = version
            self.next_seq.clear()
            if self.ledger is not None:
                self.ledger.forget()
            self.next_rid = (
                self.conn.execute("SELECT MAX(rid) FROM events").fetchone()[0] or 0) + 1

    def _seq_after(self, tenant: str) -> int:
        seq = self.next_seq.get(tenant)
        if seq is None:
            row = self.conn.execute(
                "SELECT MAX(seq) FROM events WHERE tenant = ?", (tenant,)
            ).fetchone()
            seq = (row[0] or 0) + 1
        return seq

    def _insert(
        self, tenant: str, events: list[dict[str, Any]], prepared: list[Prepared],
        skip: dict[int, Appended],
    ) -> list[Appended]:
        """Give the events (but those in ``skip``) the next seqs and write their rows,
        full-text rows, rollup counts and tree nodes."""
        conn, ledger = self.conn, self.ledger
        seq = first_seq = self._seq_after(tenant)
        rid = self.next_rid
        rows: list[tuple[Any, ...]] = []
        fts = []
        leaves: list[bytes] = []
        result: list[Appended] = []
        for i, ev in enumerate(events):
            if i in skip:
                result.append(skip[i])
                continue
            template, fields, paths, (title, description) = prepared[i]
            ev["seq"] = seq
            if template is not None:
                raw = template.replace(SEQ_MARK, b'"seq":%d' % seq)
            elif ledger is not None:
                raw = canonical_json_bytes(ev)  # prepare() found it representable
            else:
                raw = orjson.dumps(ev)
            leaf = None
            if ledger is not None:
                # With integrity on the stored body *is* the RFC 8785 form, so the leaf is
                # the hash of exactly the bytes stored.
                leaf = leaf_hash(raw)
                leaves.append(leaf)
            rows.append((rid, tenant, seq, *fields, raw.decode(), leaf, *paths))
            if title or description:
                fts.append((rid, title, description))
            result.append(Appended(fields[0], seq, True))
            seq += 1
            rid += 1
        if rows:
            insert_rows(conn, self.insert_head, rows)
            insert_rows(conn, rollup.UPSERT_HEAD, rollup.count_rows(tenant, rows),
                        rollup.UPSERT_TAIL)
            insert_rows(conn, "INSERT INTO events_fts(rowid, title, description)", fts)
            if ledger is not None:
                ledger.append(tenant, first_seq - 1, leaves)
            self.next_seq[tenant] = seq
            self.next_rid = rid
        return result

    def _apply(self, job: AppendJob) -> int:
        conn, tenant = self.conn, job.tenant
        now = time.time_ns() // 1000
        if job.idempotency_key is not None:
            row = conn.execute(
                "SELECT request_hash, response, created FROM idempotency "
                "WHERE tenant = ? AND key = ?",
                (tenant, job.idempotency_key),
            ).fetchone()
            if row is not None and row[2] >= now - self.idempotency_us:
                if row[0] != job.request_hash:
                    raise Conflict(
                        "Idempotency-Key was already used for a different request",
                        errors=[{"field": "Idempotency-Key", "reason": "reused with another body"}],
                    )
                job.result = [Appended(i, s, False) for i, s in orjson.loads(row[1])]
                return 0
        replay = self._replays(tenant, job.events, job.client_ids) if job.client_ids else {}
        result = self._insert(tenant, job.events, job.prepared, replay)
        if job.idempotency_key is not None:
            response = orjson.dumps([(a.id, a.seq) for a in result]).decode()
            request_hash = job.request_hash or ""
            sig = (self.ledger.sign_idempotency(tenant, job.idempotency_key, request_hash,
                                                response, now)
                   if self.ledger is not None else None)
            conn.execute(
                "INSERT OR REPLACE INTO idempotency(tenant, key, request_hash, response, created,"
                " sig) VALUES (?, ?, ?, ?, ?, ?)",
                (tenant, job.idempotency_key, request_hash, response, now, sig),
            )
        job.result = result
        return len(job.events) - len(replay)

    def _redact(self, job: RedactJob) -> int:
        tenant = job.tenant
        if job.event_id is not None:
            rows = self.conn.execute(
                "SELECT rid, seq, body, leaf FROM events WHERE tenant = ? AND id = ?",
                (tenant, job.event_id)).fetchall()
        else:
            marks = ",".join("?" * len(job.seqs))
            rows = self.conn.execute(
                f"SELECT rid, seq, body, leaf FROM events WHERE tenant = ? AND seq IN ({marks})"
                " ORDER BY seq", (tenant, *job.seqs)).fetchall()
        at = format_us(time.time_ns() // 1000)
        by = self._seq_after(tenant)
        digest = redaction.Digest()
        stub: dict[str, Any] | None = None
        for rid, seq, body, leaf in rows:
            ev = orjson.loads(body)
            if redaction.is_record(ev):
                if job.event_id is not None:
                    raise Conflict("a redaction record cannot be redacted: it is what proves "
                                   "the log's erasures")
                continue
            if redaction.is_stub(ev):
                stub = ev  # already redacted: asking again changes nothing
                continue
            stub = redaction.stub_of(ev, at=at, reason=job.reason, by=by)
            raw = redaction.stub_bytes(stub)
            self.conn.execute(f"UPDATE events SET body = ?{self.blank_paths} WHERE rid = ?",
                              (raw.decode(), rid))
            self.conn.execute("DELETE FROM events_fts WHERE rowid = ?", (rid,))
            digest.add(seq, bytes(leaf) if leaf is not None else b"", raw)
        job.result = stub if job.event_id is not None else {"purged": digest.count}
        if not digest.count:
            return 0
        rec = redaction.record(
            event_id=new_event_id(), tenant=tenant, at=at, actor=job.actor, reason=job.reason,
            digest=digest, subject_id=job.event_id, before=job.before)
        prepared = prepare([rec], canonical=self.ledger is not None,
                           path_segments=self.path_segments)
        self._insert(tenant, [rec], prepared, {})
        return 1

    def _replays(
        self, tenant: str, events: list[dict[str, Any]], client_ids: frozenset[int]
    ) -> dict[int, Appended]:
        """Client-chosen ids that already exist (or repeat within the request)."""
        keys = {i: content_key(events[i]) for i in sorted(client_ids)}
        ids = [events[i]["id"] for i in keys]
        found: dict[str, tuple[int, str]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for eid, seq, body in self.conn.execute(
                f"SELECT id, seq, body FROM events WHERE tenant = ? AND id IN ({marks})",
                (tenant, *chunk),
            ):
                found[eid] = (seq, body)
        replay: dict[int, Appended] = {}
        first_in_request: dict[str, int] = {}
        conflicts = []
        for i, key in keys.items():
            eid = events[i]["id"]
            if eid in found:
                seq, body = found[eid]
                if content_key(orjson.loads(body)) == key:
                    replay[i] = Appended(eid, seq, False)
                else:
                    conflicts.append({"index": i, "field": "id",
                                      "reason": f"event {eid} exists with different content"})
            elif eid in first_in_request:
                j = first_in_request[eid]
                if keys[j] != key:
                    conflicts.append({"index": i, "field": "id",
                                      "reason": f"id {eid} repeats index {j} with other content"})
                else:
                    replay[i] = Appended(eid, -j - 1, False)  # resolved below
            else:
                first_in_request[eid] = i
        if conflicts:
            raise Conflict("some events reuse an existing id with different content",
                           errors=conflicts)
        return replay


def _resolve(job: AppendJob | RedactJob) -> None:
    if job.future.done():
        return
    if job.error is not None:
        job.future.set_exception(job.error)
        return
    if isinstance(job, RedactJob):
        job.future.set_result(job.result)
        return
    # In-request duplicates point at the position of their first occurrence.
    out = [
        job.result[-a.seq - 1] if a.seq < 0 else a for a in job.result
    ]
    out = [Appended(a.id, a.seq, a.created) for a in out]
    job.future.set_result(out)
