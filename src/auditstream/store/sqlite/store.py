"""``EventStore`` on one SQLite file."""

from __future__ import annotations

import itertools
import logging
import queue
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import orjson

from ...dbapi import sqlite3
from ...errors import InvalidRequest, StoreClosed, StoreError, ValidationFailed
from ...integrity.checkpoint import Signer
from ...integrity.redaction import RECORD_TYPE
from ...log.channel import Channel, ClosedChannel, LocalChannel
from ...log.feed import CommitFeed
from ...log.prepared import prepare, segments
from ...log.protocol import AppendRequest, CheckpointRequest, RedactRequest
from ...log.sequencer import Sequencer
from ...log.writer import WriterThread
from ...model.ids import is_valid_tenant
from ...model.severity import SEVERITIES
from ...model.times import format_us
from ...query import cursor as cursors
from ...query.filter import And, Cmp, Node, Text, and_
from ..base import (
    AggregateRow,
    AggregateSpec,
    Appended,
    Bucket,
    CountRow,
    EventQuery,
    EventStore,
    MetricFn,
    Page,
    RawPage,
    StoredCheckpoint,
)
from . import rollup
from .compile import COLUMNS, Compiler, fts_query
from .hourcache import HourCache
from .logstorage import SCHEMA as LOG_SCHEMA
from .logstorage import BodySource, NodeReader, SQLiteLogStorage, has_dropped_bodies
from .schema import connect, json_path, migrate, migration_lock

T = TypeVar("T")
log = logging.getLogger("auditstream")
US_HOUR = 3_600_000_000
_PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
_SQL_METRICS = {"sum": "SUM", "avg": "AVG", "min": "MIN", "max": "MAX"}


class SQLiteEventStore(EventStore):
    """WAL-mode SQLite: the log and the index in one file and one transaction; a pool of
    reader connections; writes go through a ``Channel`` to the one writer (a thread here,
    or the writer process of a multi-process server)."""

    #: How often a reader connection checks for new planner statistics (seconds).
    STATS_CHECK_S = 1.0

    def __init__(
        self,
        path: str | Path,
        *,
        indexed_paths: list[str] | None = None,
        synchronous: str = "full",
        readers: int = 4,
        idempotency_hours: int = 24,
        on_commit: Callable[[int, int], None] | None = None,
        signer: Signer | None = None,
        deployment: str = "auditstream.local",
        channel: Channel | None = None,
        canonical: bool | None = None,
        feed: CommitFeed | None = None,
        max_queue_events: int = 50_000,
        body_source: BodySource | None = None,
    ):
        """With ``channel`` the writer lives elsewhere (another process): this store only
        reads, and sends appends there. Otherwise it migrates the file and runs the writer
        thread itself. ``canonical``: store RFC 8785 bodies (default: with a signer).
        ``body_source``: where the log reads back bodies it dropped (``logstorage``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        if body_source is None and _has_dropped_bodies(self.path):
            # Its readers would serve '' for those events (an export, blank lines).
            raise StoreError(f"{self.path} dropped the bodies its clickhouse index holds "
                             "(AUDITSTREAM_DROP_INDEXED_BODIES): open it with "
                             "AUDITSTREAM_BACKEND=clickhouse")
        self.signer = signer
        self.canonical = signer is not None if canonical is None else canonical
        self.feed = feed or CommitFeed()
        #: The writer's storage when the writer is this process's thread.
        self.log_storage: SQLiteLogStorage | None = None
        if channel is not None:
            self.path_columns = _stored_path_columns(self.path)
            self.channel: Channel = channel
        else:
            self.channel = self._local_writer(
                indexed_paths or [], synchronous, idempotency_hours, on_commit, signer,
                deployment, max_queue_events, body_source)
        self.compiler = Compiler(self.path_columns)
        self.path_segments = segments(list(self.path_columns))
        self._readers: queue.SimpleQueue[_Reader] = queue.SimpleQueue()
        for _ in range(max(1, readers)):
            self._readers.put(_Reader(self.path))
        self._reader_count = max(1, readers)
        self._closed = False
        self.hour_cache = HourCache()

    def _local_writer(
        self, indexed_paths: list[str], synchronous: str, idempotency_hours: int,
        on_commit: Callable[[int, int], None] | None, signer: Signer | None,
        deployment: str, max_queue_events: int, body_source: BodySource | None,
    ) -> Channel:
        opened = open_log(self.path, indexed_paths=indexed_paths, synchronous=synchronous,
                          idempotency_hours=idempotency_hours, signer=signer,
                          deployment=deployment, body_source=body_source)
        self.path_columns = opened.path_columns
        if opened.sequencer is None:
            return ClosedChannel(opened.refused)
        assert isinstance(opened.sequencer.storage, SQLiteLogStorage)
        self.log_storage = opened.sequencer.storage
        writer = WriterThread(opened.sequencer, max_queue_events=max_queue_events,
                              on_notices=self.feed.publish, on_commit=on_commit)
        return LocalChannel(writer, on_close=opened.close)

    # -- plumbing ----------------------------------------------------------------

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreClosed("store is closed")

        def run() -> T:
            reader = self._readers.get()
            try:
                return fn(reader.fresh(self.STATS_CHECK_S))
            finally:
                self._readers.put(reader)

        return await anyio.to_thread.run_sync(run)

    def _where(self, tenant: str, where: Node) -> tuple[str, list[Any]]:
        sql, params = self.compiler.where(where)
        return f"tenant = ? AND {sql}", [tenant, *params]

    # -- writes ------------------------------------------------------------------

    async def append(
        self,
        tenant: str,
        events: list[dict[str, Any]],
        *,
        client_ids: frozenset[int] = frozenset(),
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> list[Appended]:
        check_tenant(tenant)
        prepared = prepare(events, canonical=self.canonical, path_segments=self.path_segments,
                           client_ids=client_ids)
        result: list[Appended] = await self.channel.request(AppendRequest(
            tenant, tuple(prepared), client_ids, idempotency_key, request_hash))
        return result

    # -- reads -------------------------------------------------------------------

    async def get(self, tenant: str, event_id: str) -> dict[str, Any] | None:
        raw = await self.get_raw(tenant, event_id)
        return orjson.loads(raw) if raw is not None else None

    async def get_raw(self, tenant: str, event_id: str) -> bytes | None:
        def run(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT CAST(body AS BLOB) FROM events WHERE tenant = ? AND id = ?",
                (tenant, event_id)).fetchone()
            return bytes(row[0]) if row else None

        return await self._read(run)

    async def last_seq(self, tenant: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT MAX(seq) FROM events WHERE tenant = ?", (tenant,))
            return int(row.fetchone()[0] or 0)

        return await self._read(run)

    async def count(self, tenant: str, where: Node) -> int:
        sql, params = self._where(tenant, where)

        def run(conn: sqlite3.Connection) -> int:
            return int(conn.execute(f"SELECT COUNT(*) FROM events WHERE {sql}", params)
                       .fetchone()[0])

        return await self._read(run)

    #: Hourly aggregates whose equality filters name more values are not cached.
    HOUR_CACHE_MAX_VALUES = 16

    #: Below this many matching documents a text search looks up its matches directly;
    #: above it, walking the tenant's newest events and probing the match list is faster.
    FTS_DRIVE_MAX_DOCS = 5_000

    def _text_is_rare(self, conn: sqlite3.Connection, where: Node) -> bool:
        """Whether some top-level text condition matches few documents (in any tenant):
        counting at most ``FTS_DRIVE_MAX_DOCS + 1`` matches costs a millisecond or two."""
        for node in (where.children if isinstance(where, And) else (where,)):
            if not isinstance(node, Text):
                continue
            terms = tuple(t for t in node.terms if any(ch.isalnum() for ch in t))
            if not terms:
                continue
            n = conn.execute(
                "SELECT COUNT(*) FROM (SELECT rowid FROM events_fts WHERE events_fts MATCH ? "
                "LIMIT ?)", (fts_query(terms), self.FTS_DRIVE_MAX_DOCS + 1)).fetchone()[0]
            if n <= self.FTS_DRIVE_MAX_DOCS:
                return True
        return False

    async def query(self, tenant: str, q: EventQuery) -> Page:
        raw = await self.query_raw(tenant, q)
        return Page([orjson.loads(b) for b in raw.events], raw.next_cursor, raw.has_more,
                    raw.total)

    async def query_raw(self, tenant: str, q: EventQuery) -> RawPage:
        where, params = self._where(tenant, q.filter)
        drive_where, drive_params = where, params
        if _has_text(q.filter):
            sql, dp = Compiler(self.path_columns, fts_drive=True).where(q.filter)
            drive_where, drive_params = f"tenant = ? AND {sql}", [tenant, *dp]
        desc = q.order == "desc"
        cmp = "<" if desc else ">"
        direction = "DESC" if desc else "ASC"
        keys = ["severity", "ts", "rid"] if q.sort == "severity" else ["ts", "rid"]
        order_by = ", ".join(f"{k} {direction}" for k in keys)
        cur = (cursors.decode(q.cursor, sort=q.sort, order=q.order, tenant=tenant)
               if q.cursor else None)
        if cur is not None and len(cur.key) != len(keys):
            raise InvalidRequest("cursor is not valid", errors=[
                {"field": "cursor", "reason": "not a cursor returned by this API"}])

        def run(conn: sqlite3.Connection) -> RawPage:
            nonlocal where, params
            if drive_where is not where and self._text_is_rare(conn, q.filter):
                where, params = drive_where, drive_params
            if not q.include_total:
                return page(conn)
            # One read transaction: the total and the page see the same snapshot.
            conn.execute("BEGIN")
            try:
                return page(conn)
            finally:
                conn.execute("COMMIT")

        def page(conn: sqlite3.Connection) -> RawPage:
            page_where, page_params = where, list(params)
            if cur is not None:
                # The cursor names the last event by seq (tenant-local); find its row.
                row = conn.execute(
                    "SELECT rid FROM events WHERE tenant = ? AND seq = ?", (tenant, cur.key[-1])
                ).fetchone()
                if row is None:
                    raise InvalidRequest("cursor is not valid", errors=[
                        {"field": "cursor", "reason": "not a cursor returned by this API"}])
                tuple_sql = "(" + ", ".join(keys) + ")"
                marks = "(" + ", ".join("?" * len(keys)) + ")"
                page_where = f"{where} AND {tuple_sql} {cmp} {marks}"
                page_params += [*cur.key[:-1], row[0]]
            rows = conn.execute(
                f"SELECT CAST(body AS BLOB), severity, ts, seq FROM events WHERE {page_where} "
                f"ORDER BY {order_by} LIMIT ?",
                [*page_params, q.limit + 1],
            ).fetchall()
            has_more = len(rows) > q.limit
            rows = rows[: q.limit]
            next_cursor = None
            if has_more and rows:
                last = rows[-1]
                key = (last[1], last[2], last[3]) if q.sort == "severity" else (last[2], last[3])
                next_cursor = cursors.encode(cursors.Cursor(q.sort, q.order, key), tenant=tenant)
            total = None
            if q.include_total:
                total = int(conn.execute(f"SELECT COUNT(*) FROM events WHERE {where}", params)
                            .fetchone()[0])
            return RawPage([bytes(r[0]) for r in rows], next_cursor, has_more, total)

        return await self._read(run)

    async def aggregate(self, tenant: str, where: Node, spec: AggregateSpec) -> list[Bucket]:
        if not spec.count_unique and not spec.metrics:
            out: list[Bucket] = []
            for ts, key, n in await self.aggregate_counts(tenant, where, spec):
                if not out or out[-1].ts != ts:
                    out.append(Bucket(ts, []))
                out[-1].rows.append(AggregateRow(count=n, key=key))
            return out

        def run(conn: sqlite3.Connection) -> list[Bucket]:
            rows = self._aggregate_rows(conn, tenant, where, spec)
            buckets: dict[Any, list[AggregateRow]] = {}
            for (ts, _key), row in rows.items():
                buckets.setdefault(ts, []).append(row)
            out = []
            for ts in sorted(buckets, key=lambda t: (t is not None, t)):
                ordered = sorted(buckets[ts], key=lambda x: (-x.count, str(x.key)))
                out.append(Bucket(ts, ordered[: spec.max_groups]))
            return out

        return await self._read(run)

    async def aggregate_counts(
        self, tenant: str, where: Node, spec: AggregateSpec
    ) -> list[CountRow]:
        """Whole hours from the rollup when it can answer (hourly buckets through
        ``hour_cache``), the partial hours at the ends (or everything) counted from the
        events; SQL puts the rows in answer order."""
        if spec.count_unique or spec.metrics:
            return await super().aggregate_counts(tenant, where, spec)
        p = rollup.plan(where, spec)
        # Filters naming many values are rare, and would make big cache keys.
        if p is not None and spec.interval == "hour" and sum(
                len(v) for _, v in p.equal) <= self.HOUR_CACHE_MAX_VALUES:
            h1, h2 = rollup.whole_hours(p)
            if h1 is None or h2 is None or h1 < h2:
                return await self._read(
                    lambda conn: self._cached_hours(conn, tenant, where, spec, p, h1, h2))
        sql, params = self._counts_sql(tenant, where, spec, p)

        def run(conn: sqlite3.Connection) -> list[CountRow]:
            return _answer_order(conn.execute(sql, params), spec)

        return await self._read(run)

    def _cached_hours(
        self, conn: sqlite3.Connection, tenant: str, where: Node, spec: AggregateSpec,
        p: rollup.Plan, h1: int | None, h2: int | None,
    ) -> list[CountRow]:
        """Hourly buckets: whole hours from ``hour_cache`` (brought up to the snapshot's last
        seq), the partial hours at the ends counted from the events, in one snapshot."""
        lo = rollup.FIRST_HOUR if h1 is None else h1
        hi = rollup.LAST_HOUR if h2 is None else h2
        key = (tenant, spec.group_by, tuple(sorted(p.equal)))
        name = "k" if spec.group_by != "severity" else rollup.severity_name_sql("k")

        def fill(a: int, b: int) -> list[tuple[int, Any, int]]:
            sql, params = rollup.counts_sql(tenant, p, spec, a, b)
            return conn.execute(f"SELECT b, {name} AS key, n FROM ({sql}) "
                                "ORDER BY b, n DESC, key", params).fetchall()

        def dirty(after: int) -> list[int]:
            return [h for (h,) in conn.execute(
                f"SELECT DISTINCT {rollup.bucket_sql('hour', 'ts')} FROM events "
                "WHERE tenant = ? AND seq > ?", (tenant, after))]

        def edge(a: int, b: int) -> list[CountRow]:
            sql, params = self._scan_counts_sql(tenant, _between(where, a, b), spec)
            return conn.execute(f"SELECT b, {name} AS key, n FROM ({sql}) "
                                "ORDER BY b, n DESC, key", params).fetchall()

        conn.execute("BEGIN")  # the last seq, the hours and the edges: one snapshot
        try:
            seq = conn.execute("SELECT MAX(seq) FROM events WHERE tenant = ?",
                               (tenant,)).fetchone()[0] or 0
            rows: list[CountRow] = []
            if p.lo is not None and h1 is not None and p.lo < h1:
                rows += edge(p.lo, h1)
            rows += self.hour_cache.rows(key, seq, lo, hi, fill, dirty)
            if p.hi is not None and h2 is not None and h2 < p.hi:
                rows += edge(h2, p.hi)
        finally:
            conn.execute("COMMIT")
        return _answer_order(rows, spec)

    def _counts_sql(self, tenant: str, where: Node, spec: AggregateSpec,
                    p: rollup.Plan | None) -> tuple[str, list[Any]]:
        parts: list[tuple[str, list[Any]]] = []
        if p is not None:
            h1, h2 = rollup.whole_hours(p)
            # Less than an hour: scanning is cheap and simpler.
            if h1 is None or h2 is None or h1 < h2:
                parts.append(rollup.counts_sql(tenant, p, spec, h1, h2))
                if p.lo is not None and h1 is not None and p.lo < h1:
                    parts.append(self._scan_counts_sql(
                        tenant, _between(where, p.lo, h1), spec))
                if p.hi is not None and h2 is not None and h2 < p.hi:
                    parts.append(self._scan_counts_sql(
                        tenant, _between(where, h2, p.hi), spec))
        if not parts:
            parts.append(self._scan_counts_sql(tenant, where, spec))
        union = " UNION ALL ".join(sql for sql, _ in parts)
        params = [v for _, ps in parts for v in ps]
        key = "k" if spec.group_by != "severity" else rollup.severity_name_sql("k")
        # Hourly buckets of the rollup and of the partial hours never coincide.
        if len(parts) == 1 or spec.interval == "hour":
            return f"SELECT b, {key} AS key, n FROM ({union}) ORDER BY b, n DESC, key", params
        return (f"SELECT b, {key} AS key, SUM(n) AS n FROM ({union}) GROUP BY b, k "
                "ORDER BY b, n DESC, key", params)

    def _scan_counts_sql(self, tenant: str, where: Node, spec: AggregateSpec
                         ) -> tuple[str, list[Any]]:
        """``SELECT bucket, key, n`` counted from the events (no row for an empty group)."""
        where_sql, params = self._where(tenant, where)
        key, kp = ("NULL", []) if spec.group_by is None else self._dim(spec.group_by)
        if spec.group_by is not None:
            where_sql += f" AND {key} IS NOT NULL AND {key} != ''"
            params += kp + kp
        return (f"SELECT {rollup.bucket_sql(spec.interval, 'ts')} AS b, {key} AS k, "
                f"COUNT(*) AS n FROM events WHERE {where_sql} GROUP BY 1, 2", [*kp, *params])

    def _aggregate_rows(
        self, conn: sqlite3.Connection, tenant: str, where: Node, spec: AggregateSpec
    ) -> dict[tuple[Any, Any], AggregateRow]:
        where_sql, params = self._where(tenant, where)
        select: list[str] = []
        sel_params: list[Any] = []
        group: list[str] = []
        select.append(rollup.bucket_sql(spec.interval, "ts"))
        if spec.interval is not None:
            group.append("1")
        if spec.group_by is not None:
            key_expr, kp = self._dim(spec.group_by)
            select.append(key_expr)
            sel_params += kp
            group.append("2")
            where_sql += f" AND {key_expr} IS NOT NULL AND {key_expr} != ''"
            params += kp + kp
        else:
            select.append("NULL")
        select.append("COUNT(*)")
        for dim in spec.count_unique:
            expr, dp = self._dim(dim)
            select.append(f"COUNT(DISTINCT NULLIF({expr}, ''))")
            sel_params += dp
        sql_metrics = [(fn, path) for fn, path in spec.metrics if fn in _SQL_METRICS]
        for fn, path in sql_metrics:
            expr, dp = self._num(path)
            select.append(f"{_SQL_METRICS[fn]}({expr})")
            sel_params += dp
        sql = (
            f"SELECT {', '.join(select)} FROM events WHERE {where_sql}"
            + (f" GROUP BY {', '.join(group)}" if group else "")
        )
        out: dict[tuple[Any, Any], AggregateRow] = {}
        try:
            result = conn.execute(sql, [*sel_params, *params]).fetchall()
        except sqlite3.OperationalError as exc:
            if "integer overflow" not in str(exc):
                raise
            # Integer sums beyond 64 bits: SQLite's SUM refuses, TOTAL sums as floats.
            result = conn.execute(sql.replace("SUM(", "TOTAL("), [*sel_params, *params]
                                  ).fetchall()
        for r in result:
            count = r[2]
            if count == 0:
                continue
            row = AggregateRow(count=count, key=_group_key(spec.group_by, r[1]))
            i = 3
            for dim in spec.count_unique:
                row.uniques[dim] = r[i]
                i += 1
            for fn, path in sql_metrics:
                row.metrics.setdefault(path, {})[fn] = r[i]
                i += 1
            out[r[0], row.key] = row
        pct = [(fn, path) for fn, path in spec.metrics if fn in _PERCENTILES]
        if pct:
            buckets: dict[Any, list[AggregateRow]] = {}
            for (ts, _k), row in out.items():
                buckets.setdefault(ts, []).append(row)
            self._percentiles(conn, buckets, pct, spec, where_sql, params)
        return out

    def _percentiles(
        self,
        conn: sqlite3.Connection,
        buckets: dict[Any, list[AggregateRow]],
        pct: list[tuple[MetricFn, str]],
        spec: AggregateSpec,
        where_sql: str,
        params: list[Any],
    ) -> None:
        # SQLite has no percentile function: read the values of each path once, sorted.
        index = {(ts, r.key): r for ts, rows in buckets.items() for r in rows}
        for path in dict.fromkeys(p for _, p in pct):
            expr, dp = self._num(path)
            bucket_sql = rollup.bucket_sql(spec.interval, "ts")
            key_sql, kp = ("NULL", []) if spec.group_by is None else self._dim(spec.group_by)
            values: dict[tuple[Any, Any], list[float]] = {}
            for b, k, v in conn.execute(
                f"SELECT {bucket_sql}, {key_sql}, {expr} AS v FROM events "
                f"WHERE {where_sql} AND {expr} IS NOT NULL ORDER BY v",
                [*kp, *dp, *params, *dp],
            ):
                values.setdefault((b, _group_key(spec.group_by, k)), []).append(v)
            for fn, p in pct:
                if p != path:
                    continue
                for key, row in index.items():
                    vals = values.get(key)
                    row.metrics.setdefault(path, {})[fn] = (
                        _nearest_rank(vals, _PERCENTILES[fn]) if vals else None
                    )

    def _dim(self, path: str) -> tuple[str, list[Any]]:
        """A group key or a distinct value: the scalar at ``path``, with JSON booleans as the
        blobs ``x'01'``/``x'00'`` (``_group_key`` turns them back). SQL has no booleans:
        ``json_extract`` reads ``true`` as 1, and a declared path's column holds NULL for
        one, so without this ``true`` merged with 1, or went uncounted, depending on
        ``AUDITSTREAM_INDEXED_PATHS``. No JSON value reads back as a blob."""
        expr, p = self.compiler.expr(path)
        if path in COLUMNS:
            return expr, p
        jp = json_path(path)
        bools = "CASE json_type(body, ?) WHEN 'true' THEN x'01' WHEN 'false' THEN x'00' END"
        if path in self.compiler.path_columns:
            return f"(CASE WHEN {expr} IS NOT NULL THEN {expr} ELSE {bools} END)", [jp]
        # Objects and lists are no group key, as with a declared path.
        return (f"(CASE json_type(body, ?) WHEN 'true' THEN x'01' WHEN 'false' THEN x'00' "
                f"WHEN 'object' THEN NULL WHEN 'array' THEN NULL ELSE {expr} END)", [jp, *p])

    def _num(self, path: str) -> tuple[str, list[Any]]:
        """The number at ``path``, NULL for anything else (booleans included)."""
        expr, p = self.compiler.expr(path)
        if path in COLUMNS:
            return expr, p
        if path in self.compiler.path_columns:  # holds scalars only, never a boolean
            return f"(CASE WHEN typeof({expr}) IN ('integer', 'real') THEN {expr} END)", p
        return (f"(CASE WHEN json_type(body, ?) IN ('integer', 'real') THEN {expr} END)",
                [json_path(path), *p])

    async def scan(
        self, tenant: str, where: Node, *, after_seq: int = 0, batch: int = 1000
    ) -> AsyncIterator[list[dict[str, Any]]]:
        async for raws in self.scan_raw(tenant, where, after_seq=after_seq, batch=batch):
            yield [orjson.loads(b) for b in raws]

    async def scan_raw(
        self, tenant: str, where: Node, *, after_seq: int = 0, batch: int = 1000
    ) -> AsyncIterator[list[bytes]]:
        where_sql, params = self._where(tenant, where)
        last = after_seq
        while True:
            def run(conn: sqlite3.Connection, last: int = last) -> list[tuple[int, bytes]]:
                return conn.execute(
                    f"SELECT seq, CAST(body AS BLOB) FROM events WHERE {where_sql} AND seq > ? "
                    "ORDER BY seq LIMIT ?",
                    [*params, last, batch],
                ).fetchall()

            rows = await self._read(run)
            if not rows:
                return
            last = rows[-1][0]
            yield [bytes(b) for _, b in rows]
            if len(rows) < batch:
                return

    async def merkle_nodes(
        self, tenant: str, ids: list[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        def run(conn: sqlite3.Connection) -> dict[tuple[int, int], bytes]:
            get = NodeReader(conn, tenant)
            return {(lvl, idx): get(lvl, idx) for lvl, idx in ids}

        return await self._read(run)

    async def sign_checkpoint(self, tenant: str, size: int) -> str:
        note: str = await self.channel.request(CheckpointRequest(tenant, size))
        return note

    async def checkpoints(
        self, tenant: str, *, size: int | None = None
    ) -> list[StoredCheckpoint]:
        def run(conn: sqlite3.Connection) -> list[StoredCheckpoint]:
            if size is None:
                sql = ("SELECT size, root, note FROM checkpoints WHERE tenant = ? "
                       "ORDER BY size DESC LIMIT 1")
                rows = conn.execute(sql, (tenant,)).fetchall()
            else:
                rows = conn.execute(
                    "SELECT size, root, note FROM checkpoints WHERE tenant = ? AND size = ?",
                    (tenant, size)).fetchall()
            return [StoredCheckpoint(r[0], bytes(r[1]), r[2]) for r in rows]

        return await self._read(run)

    async def redact(
        self, tenant: str, event_id: str, reason: str, *, actor: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        return await self._submit_redaction(
            tenant, reason, actor, event_id=event_id)


    async def purge(self, tenant: str, before_us: int, reason: str, *,
                    actor: dict[str, Any] | None = None) -> int:
        try:
            before = format_us(before_us)
        except (OverflowError, ValueError):
            raise InvalidRequest("purge cutoff out of range", errors=[
                {"field": "before", "reason": "must lie in years 0001-9999"}]) from None
        done, after = 0, 0
        while True:
            def run(conn: sqlite3.Connection, after: int = after) -> list[int]:
                return [r[0] for r in conn.execute(
                    "SELECT seq FROM events WHERE tenant = ? AND seq > ? AND ts < ? AND type != ? "
                    # A dropped body ('': logstorage) is an unredacted event's.
                    "AND CASE WHEN body = '' THEN 1 ELSE json_type(body, '$.redacted') IS NULL "
                    "END ORDER BY seq LIMIT ?",
                    (tenant, after, before_us, RECORD_TYPE, self.PURGE_CHUNK))]

            seqs = await self._read(run)
            if not seqs:
                return done
            result = await self._submit_redaction(tenant, reason, actor, seqs=tuple(seqs),
                                                  before=before)
            done += int(result["purged"]) if result else 0
            after = seqs[-1]

    async def _submit_redaction(
        self, tenant: str, reason: str, actor: dict[str, Any] | None, **what: Any,
    ) -> dict[str, Any] | None:
        if self._closed:
            raise StoreClosed("store is closed")
        result: dict[str, Any] | None = await self.channel.request(
            RedactRequest(tenant, reason, actor or {"type": "system"}, **what))
        return result

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.channel.close()
        for _ in range(self._reader_count):
            self._readers.get().close()


class _Reader:
    """A read-only connection that reopens when the writer has refreshed the planner's
    statistics (checked at most every few seconds: it may run in another process)."""

    def __init__(self, path: str):
        self.path = path
        self.conn = connect(path, readonly=True)
        self.marker = self._marker()
        self.checked = time.monotonic()

    def _marker(self) -> Any:
        try:
            return self.conn.execute(
                "SELECT group_concat(stat, ';') FROM sqlite_stat1 WHERE tbl = 'events'"
            ).fetchone()[0]
        except sqlite3.OperationalError:  # no statistics yet
            return None

    def fresh(self, every_s: float) -> sqlite3.Connection:
        now = time.monotonic()
        if now - self.checked >= every_s:
            self.checked = now
            marker = self._marker()
            if marker != self.marker:
                self.conn.close()
                self.conn = connect(self.path, readonly=True)
                self.marker = marker
        return self.conn

    def close(self) -> None:
        self.conn.close()


@dataclass
class OpenedLog:
    """The file's log opened for writing (``sequencer``), or why it cannot be (``refused``)."""

    path_columns: dict[str, str]
    sequencer: Sequencer | None
    refused: str
    close: Callable[[], None]


def open_log(
    path: str, *, indexed_paths: list[str], synchronous: str, idempotency_hours: int,
    signer: Signer | None, deployment: str, body_source: BodySource | None = None,
) -> OpenedLog:
    """Migrate the file and open its log for the one writer (thread or process)."""
    wconn = connect(path, synchronous=synchronous)
    try:
        with migration_lock(path):
            path_columns = migrate(wconn, indexed_paths)
            wconn.executescript(LOG_SCHEMA)
            rollup.migrate(wconn)
        if signer is None and _has_signed_log(path):
            # Appending without the key would give the log leafless, unsigned entries.
            wconn.close()
            return OpenedLog(path_columns, None, "it keeps a signed log, and it was opened "
                             "without the signing key", lambda: None)
        storage = SQLiteLogStorage(wconn, path_columns, dropped=body_source)
    except sqlite3.OperationalError as exc:
        # A full disk (or a read-only file) must not take reads down with writes.
        wconn.close()
        if not _has_events_table(path):
            raise
        log.warning("%s cannot be written (%s): serving it read-only", path, exc)
        return OpenedLog(_stored_path_columns(path), None, str(exc), lambda: None)
    sequencer = Sequencer(storage, signer=signer, deployment=deployment,
                          idempotency_us=idempotency_hours * US_HOUR)
    return OpenedLog(path_columns, sequencer, "", wconn.close)


def check_tenant(tenant: str) -> None:
    if not is_valid_tenant(tenant):
        raise ValidationFailed("invalid tenant", errors=[
            {"field": "tenant", "reason": "letters, digits, '_', '-', '.', up to 63"}])


def _has_events_table(path: str) -> bool:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone() \
            is not None
    finally:
        conn.close()


def _has_dropped_bodies(path: str) -> bool:
    if not Path(path).exists():
        return False
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return has_dropped_bodies(conn)
    finally:
        conn.close()


def _has_signed_log(path: str) -> bool:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT 1 FROM checkpoints LIMIT 1").fetchone() is not None
    finally:
        conn.close()


def _stored_path_columns(path: str) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT path, col FROM indexed_paths ORDER BY rowid"))
    finally:
        conn.close()


def _has_text(node: Node) -> bool:
    return isinstance(node, Text) or (
        isinstance(node, And) and any(isinstance(c, Text) for c in node.children))


def _between(where: Node, lo: int, hi: int) -> Node:
    """A filter the rollup serves (``rollup.plan``), its time range replaced by [lo, hi):
    with two upper (or lower) bounds SQLite may range-scan by the looser one, which made
    the partial hour at the end of a 30-day range scan all 30 days."""
    parts = where.children if isinstance(where, And) else (where,)
    rest = [c for c in parts if not (isinstance(c, Cmp) and c.path == "timestamp")]
    return and_(*rest, Cmp("timestamp", ">=", lo), Cmp("timestamp", "<", hi))


#: Group keys that SQL orders as answers do (by ``str(key)``): text, or severity names.
_TEXT_KEYS = frozenset({None, "type", "category", "outcome", "severity", "id"})
_START = object()


def _answer_order(rows: Iterable[CountRow], spec: AggregateSpec) -> list[CountRow]:
    """At most ``max_groups`` rows per bucket, ordered by count, then key as text."""
    limit = spec.max_groups
    if spec.group_by not in _TEXT_KEYS:  # numbers or mixed types: order as Python does
        keyed = ((b, _group_key(spec.group_by, k), n) for b, k, n in rows)
        return [r for _, group in itertools.groupby(keyed, key=lambda r: r[0])
                for r in sorted(group, key=lambda r: (-r[2], str(r[1])))[:limit]]
    out: list[CountRow] = []
    last: Any = _START
    taken = 0
    for row in rows:
        if row[0] != last:
            last, taken = row[0], 0
        if taken < limit:
            out.append(row)
            taken += 1
    return out


def _group_key(group_by: str | None, key: Any) -> Any:
    """A key as SQL answered it, as the API answers it: severities by name, booleans back
    from the blobs of ``_dim``."""
    if group_by == "severity" and isinstance(key, int):
        return SEVERITIES[key]
    if isinstance(key, bytes):
        return key == b"\x01"
    return key


def _nearest_rank(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile, the definition monitoring tools document."""
    import math

    idx = max(0, math.ceil(q * len(sorted_values)) - 1)
    return sorted_values[idx]
