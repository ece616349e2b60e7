"""``EventStore`` with the log on SQLite and the index on ClickHouse.

The log (sequencing, idempotency, leaf hashes, Merkle nodes, checkpoints, redaction
records) is ``SQLiteEventStore``'s, unchanged, on the node that owns the tenants; readers
(``get``, ``query``, ``count``, ``aggregate``, ``scan``) read ClickHouse, where
``transfer.Indexer`` puts each commit before its notices go out (``IndexedFeed``) and
before ``append`` returns. Every read is bounded by the tenant's visibility watermark,
read from ClickHouse in the same call, so a reader on any node sees 1..N or nothing of
N+1.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import orjson

from ...errors import ElsewhereHome, InvalidRequest, StoreClosed, StoreUnavailable
from ...homes import TenantHomes
from ...log.protocol import Appended
from ...model.severity import SEVERITIES
from ...query import cursor as cursors
from ...query.filter import All, And, Cmp, Eq, Node
from ...query.predicate import Predicate, compile_predicate
from ..base import (
    AggregateRow,
    AggregateSpec,
    Bucket,
    CountRow,
    EventQuery,
    Page,
    RawPage,
    StoredCheckpoint,
)
from ..sqlite.store import SQLiteEventStore
from . import aggregate as pyagg
from . import rollup
from .compile import INT_COLUMNS, STRING_COLUMNS, Compiler, ambiguous, json_args, time_value
from .engine import READ_SETTINGS, Engine
from .transfer import IndexedFeed, Indexer

T = TypeVar("T")
log = logging.getLogger("auditstream")

#: Rows a filtered read fetches per round when the predicate has the last word.
CHUNK = 1000
#: Seqs one ``scan`` query covers (the table is sorted by time; the ``seq`` skip index
#: keeps each window's query to the granules that hold it).
SCAN_WINDOW = 65_536
_RAW = {"body": "bytes"}
#: Batches a scan reads per query once the caller has asked for a second batch (the first
#: read is the caller's batch: the live stream and push take one batch and stop), when
#: its batches are of at least READ_AHEAD_FROM events (the API's export sizes batches by
#: bytes, so a batch of few means heavy events: it reads one batch per query and holds
#: about one).
READ_AHEAD = 32
READ_AHEAD_FROM = 64
#: Most rows one scan query reads ahead. Measured on a 2M index (400k-event tenant,
#: `bench/RESULTS.md`): 8 batches and 4,096 rows exported 120-129k events/s through the
#: API's NDJSON, 32 and 8,192 247-249k; 16,384 was slower again (163-166k).
READ_AHEAD_MOST = 8192
#: Most bytes of bodies one read-ahead query may return, from the largest body of the
#: seqs it covers (``_BodySizes``): callers that size batches by count (the CLI export,
#: the bundle, the live stream) would otherwise read 8,192 events of 1 MB (8 GB) at once.
READ_AHEAD_BYTES = 16 * 1024 * 1024


class ClickHouseEventStore(SQLiteEventStore):
    #: How often (seconds, per tenant) an append checks that no other node writes the tenant.
    SOLE_WRITER_CHECK_S = 1.0
    #: Seqs a tenant's confirmed range grows by before the log drops their bodies: one
    #: extra log transaction per this many events, rather than one per commit.
    DROP_EVERY = 4096
    #: Most blocks of ``drop_every`` one drop covers: a drop stalls the writer (~36 µs per
    #: row), so the first one after the setting is turned on, over a long log, is spread
    #: over the transfers that follow instead of stalling ingest for minutes.
    DROP_MOST_BLOCKS = 4

    def __init__(self, path: str | Path, *, clickhouse_url: str, clients: int = 4,
                 hook: Callable[[str], None] | None = None,
                 homes: TenantHomes | None = None, rollup_block: int = rollup.BLOCK,
                 drop_bodies: bool = False, drop_every: int = DROP_EVERY,
                 **kwargs: Any):
        """``path``: the SQLite log; ``clickhouse_url``: the index (``engine``). ``hook``:
        called at the steps of each transfer (``transfer.Indexer``; tests). ``homes``: the
        tenants this node may append for (``auditstream.homes``; default: all).
        ``rollup_block``: seqs per block of the hourly counts (``rollup``; tests make it
        small so that a few events fill blocks). ``drop_bodies``: the log forgets the
        bodies of signed entries once the index holds them, ``drop_every`` seqs at a time
        (``_drop``)."""
        self.homes = homes or TenantHomes()
        self.drop_every = drop_every
        self._dropped: dict[str, int] = {}
        self._checked: dict[str, float] = {}
        self._ahead: set[str] = set()
        self._writes = 0
        self._no_writes = asyncio.Event()
        self.engine = Engine(clickhouse_url, clients=clients)
        try:
            if kwargs.get("channel") is None:  # a read-only store creates nothing
                self.engine.migrate(rollup_block, kwargs.get("indexed_paths") or ())
            self.index_path_columns = self.engine.path_columns()
            feed = IndexedFeed()
            super().__init__(path, feed=feed, body_source=self._index_bodies, **kwargs)
            self.indexer = Indexer(self.engine, self.path, hook=hook, block=rollup_block,
                                   path_columns=self.index_path_columns)
            if kwargs.get("channel") is None:
                # Anything the log committed that the index lacks (a crash between the
                # two, a CLI that wrote the log) goes over before anyone reads.
                self.indexer.catch_up()
                feed.indexer = self.indexer
                if self.log_storage is not None:
                    self.indexer.log_paths(list(self.path_columns))
                    self.log_storage.on_committed = self.indexer.committed
                if drop_bodies and self.log_storage is not None:
                    # The index's copy becomes the only one: its inserts must be durable
                    # when they return, as the log's commits are.
                    self.engine.fsync_inserts()
                    self.indexer.on_confirmed = self._drop
        except BaseException:
            self.engine.close()
            raise

    # -- plumbing ------------------------------------------------------------------------

    @property
    def db(self) -> str:
        return self.engine.db

    async def _ch(self, fn: Callable[[Any], T]) -> T:
        if self._closed:
            raise StoreClosed("store is closed")
        return await anyio.to_thread.run_sync(self.engine.run, fn)

    def _base(self, c: Any, tenant: str, node: Node, *, fixed: bool = False
              ) -> tuple[str, dict[str, Any], bool]:
        """The tenant's visible events matching ``node`` (a superset unless exact)."""
        comp = Compiler(columns=self.index_path_columns)
        sql, exact = comp.where(node)
        params = comp.params.values
        params["tenant"] = tenant
        visible, wm = self._visible(c, tenant, fixed=fixed)
        params.update(wm)
        return f"tenant = {{tenant:String}} AND {visible} AND {sql}", params, exact

    def _visible(self, c: Any, tenant: str, *, fixed: bool = False
                 ) -> tuple[str, dict[str, Any]]:
        """The condition that bounds a read by the tenant's watermark, and its parameter.

        The watermark is this process's own when it moved it within the last second (the
        tenants it appends for; a literal spares each read a subquery, about 4 ms in
        chdb); otherwise it is read inside the query, or first with ``fixed``
        (``params["wm"]``): for answers made of several queries that must agree."""
        mark = self.indexer.own_mark(tenant)
        if mark is None and fixed:
            mark = _watermark(c, self.db, tenant)
        if mark is not None:
            return "seq <= {wm:UInt64}", {"wm": mark}
        return (f"seq <= (SELECT max(seq) FROM {self.db}.watermarks "
                "WHERE tenant = {tenant:String})"), {}

    def _index_bodies(self, tenant: str, seqs: list[int]) -> dict[int, bytes]:
        """The bodies of ``seqs`` as the index holds them: the log's ``BodySource`` for
        those it dropped (called on the writer's thread)."""
        def run(c: Any) -> dict[int, bytes]:
            out: dict[int, bytes] = {}
            for start in range(0, len(seqs), 1000):
                out.update((int(s), bytes(b)) for s, b in c.query(
                    f"SELECT seq, body FROM {self.db}.events FINAL WHERE tenant = "
                    "{t:String} AND seq IN {s:Array(UInt64)}",
                    parameters={"t": tenant, "s": seqs[start:start + 1000]},
                    column_formats=_RAW, settings=READ_SETTINGS).result_rows)
            return out

        return self.engine.run(run)

    def _drop(self, marks: list[tuple[str, int]]) -> None:
        """After a transfer (on the writer's thread, between two commits): the log forgets
        the bodies the index now holds, a tenant's whenever its watermark passed the last
        drop by ``drop_every``. A failed drop (a full disk) only leaves them for the next."""
        storage = self.log_storage
        assert storage is not None
        for tenant, mark in marks:
            done = self._dropped.get(tenant)
            if done is None:
                done = self._dropped[tenant] = storage.dropped_upto(tenant)
            if mark - done < self.drop_every:
                continue
            upto = min(mark, done + self.DROP_MOST_BLOCKS * self.drop_every)
            try:
                storage.drop_bodies(tenant, upto)
            except Exception:
                log.exception("tenant %r: dropping the log's indexed bodies failed; they "
                              "stay until the next try", tenant)
                continue
            self._dropped[tenant] = upto

    # -- writes --------------------------------------------------------------------------

    def _home_only(self, tenant: str) -> None:
        if not self.homes.owns(tenant):
            home = self.homes.home_of(tenant)
            raise ElsewhereHome(tenant, home, self.homes.url_of(home))

    async def merkle_nodes(self, tenant: str, ids: list[tuple[int, int]]
                           ) -> dict[tuple[int, int], bytes]:
        # The tree and the checkpoints live in the home's log, like the seqs they cover.
        self._home_only(tenant)
        return await super().merkle_nodes(tenant, ids)

    async def checkpoints(self, tenant: str, *, size: int | None = None
                          ) -> list[StoredCheckpoint]:
        self._home_only(tenant)
        return await super().checkpoints(tenant, size=size)

    async def sign_checkpoint(self, tenant: str, size: int) -> str:
        self._home_only(tenant)
        return await super().sign_checkpoint(tenant, size)

    async def _check_home(self, tenant: str) -> None:
        """Appends (events and redaction records) only for the tenants this node owns: two
        nodes sequencing one tenant would give two events the same seq in the index.

        The configured map is the guard; the index is the check that the map is obeyed.
        At most every ``SOLE_WRITER_CHECK_S`` per tenant, the tenant's watermark (read
        first) is compared with this log's tail (read second): this node's own commits
        reach the index after its log, so a watermark beyond the tail was written by
        another node, and the tenant's appends stop here (503) until an operator fixes
        the map (docs/scale-out.md)."""
        self._home_only(tenant)
        now = time.monotonic()
        if tenant not in self._ahead and now - self._checked.get(tenant, -1e9) >= \
                self.SOLE_WRITER_CHECK_S:
            mark = await self._ch(lambda c: _watermark(c, self.db, tenant))
            tail = await SQLiteEventStore.last_seq(self, tenant)
            if mark > tail:
                self._ahead.add(tenant)
            self._checked[tenant] = now
        if tenant in self._ahead:
            log.error("tenant %r: the index holds seqs this node's log never wrote: another "
                      "node appends for it (check AUDITSTREAM_TENANT_HOMES)", tenant)
            raise StoreUnavailable(f"tenant {tenant!r} is appended to by another node too; "
                                   "appends are stopped until the tenant map is fixed")

    @asynccontextmanager
    async def _writing(self, tenant: str) -> AsyncIterator[None]:
        """A write that checks the tenant's home first: ``close`` waits for it, since it
        was accepted before the check's awaits let ``close`` run."""
        self._writes += 1
        try:
            await self._check_home(tenant)
            yield
        finally:
            self._writes -= 1
            if not self._writes:
                self._no_writes.set()

    async def append(self, tenant: str, events: list[dict[str, Any]], **kwargs: Any
                     ) -> list[Appended]:
        async with self._writing(tenant):
            return await super().append(tenant, events, **kwargs)

    async def purge(self, tenant: str, before_us: int, reason: str, *,
                    actor: dict[str, Any] | None = None) -> int:
        # Before the log is searched: elsewhere, this node's log has nothing to purge.
        async with self._writing(tenant):
            return await super().purge(tenant, before_us, reason, actor=actor)

    async def _submit_redaction(self, tenant: str, reason: str,
                                actor: dict[str, Any] | None, **what: Any
                                ) -> dict[str, Any] | None:
        async with self._writing(tenant):
            return await super()._submit_redaction(tenant, reason, actor, **what)

    # -- reads ---------------------------------------------------------------------------

    async def last_seq(self, tenant: str) -> int:
        """The tenant's visibility watermark: the log may be ahead by the commit being
        indexed, which no reader can see yet."""
        if self._closed:
            raise StoreClosed("store is closed")
        mark = self.indexer.own_mark(tenant)
        if mark is not None:
            return mark
        return await self._ch(lambda c: _watermark(c, self.db, tenant))

    async def get_raw(self, tenant: str, event_id: str) -> bytes | None:
        def run(c: Any) -> bytes | None:
            visible, wm = self._visible(c, tenant)
            rows = c.query(
                f"SELECT body FROM {self.db}.events FINAL WHERE tenant = {{tenant:String}} "
                f"AND id = {{i:String}} AND {visible} LIMIT 1",
                parameters={"tenant": tenant, "i": event_id, **wm}, column_formats=_RAW,
                settings=READ_SETTINGS).result_rows
            return bytes(rows[0][0]) if rows else None

        return await self._ch(run)

    async def query(self, tenant: str, q: EventQuery) -> Page:
        raw = await self.query_raw(tenant, q)
        return Page([orjson.loads(b) for b in raw.events], raw.next_cursor, raw.has_more,
                    raw.total)

    async def query_raw(self, tenant: str, q: EventQuery) -> RawPage:
        desc = q.order == "desc"
        cmp = "<" if desc else ">"
        direction = "DESC" if desc else "ASC"
        keys = ["sev", "ts", "seq"] if q.sort == "severity" else ["ts", "seq"]
        order_by = ", ".join(f"{k} {direction}" for k in keys)
        cur = (cursors.decode(q.cursor, sort=q.sort, order=q.order, tenant=tenant)
               if q.cursor else None)
        if cur is not None and len(cur.key) != len(keys):
            raise _bad_cursor()
        pred = None

        def run(c: Any) -> RawPage:
            nonlocal pred
            # With a total, the page and the count agree on one watermark.
            where, params, exact = self._base(c, tenant, q.filter, fixed=q.include_total)
            if not exact:
                pred = compile_predicate(q.filter)
            after = tuple(cur.key) if cur is not None else None
            if after is not None and not c.query(
                    f"SELECT count() FROM {self.db}.events WHERE tenant = {{tenant:String}} "
                    "AND seq = {cs:Int64}", parameters={"tenant": tenant, "cs": after[-1]}
                    ).result_rows[0][0]:
                raise _bad_cursor()
            found: list[tuple[bytes, int, int, int]] = []
            want = q.limit + 1
            while len(found) < want:
                page_where = where
                page_params = dict(params)
                if after is not None:
                    marks = []
                    for i in range(len(keys)):
                        page_params[f"k{i}"] = after[i]
                        marks.append(f"{{k{i}:Int64}}")
                    page_where += (f" AND ({', '.join(keys)}) {cmp} ({', '.join(marks)})"
                                   f" AND {keys[0]} {cmp}= {marks[0]}")
                n = want - len(found) if pred is None else max(CHUNK, want)
                rows = c.query(
                    f"SELECT body, sev, ts, seq FROM {self.db}.events FINAL WHERE {page_where} "
                    f"ORDER BY {order_by} LIMIT {n}", parameters=page_params,
                    column_formats=_RAW, settings=READ_SETTINGS).result_rows
                for r in rows:
                    if pred is None or pred(orjson.loads(r[0])):
                        found.append((bytes(r[0]), r[1], r[2], r[3]))
                if len(rows) < n:
                    break
                last = rows[-1]
                after = (last[1], last[2], last[3]) if q.sort == "severity" else (last[2],
                                                                                    last[3])
            has_more = len(found) > q.limit
            found = found[: q.limit]
            next_cursor = None
            if has_more and found:
                last = found[-1]
                key = (last[1], last[2], last[3]) if q.sort == "severity" else (last[2],
                                                                                  last[3])
                next_cursor = cursors.encode(cursors.Cursor(q.sort, q.order, key), tenant=tenant)
            total = self._count(c, where, params, pred) if q.include_total else None
            return RawPage([f[0] for f in found], next_cursor, has_more, total)

        return await self._ch(run)

    def _count(self, c: Any, where: str, params: dict[str, Any], pred: Predicate | None) -> int:
        if pred is None:
            return int(c.query(f"SELECT count() FROM {self.db}.events FINAL WHERE {where}",
                               parameters=params, settings=READ_SETTINGS).result_rows[0][0])
        n = 0
        with c.query_rows_stream(f"SELECT body FROM {self.db}.events FINAL WHERE {where}",
                                 parameters=params, column_formats=_RAW,
                                 settings=READ_SETTINGS) as stream:
            for (body,) in stream:
                n += pred(orjson.loads(body))
        return n

    async def count(self, tenant: str, where: Node) -> int:
        def run(c: Any) -> int:
            sql, params, exact = self._base(c, tenant, where)
            return self._count(c, sql, params, None if exact else compile_predicate(where))

        return await self._ch(run)

    async def aggregate(self, tenant: str, where: Node, spec: AggregateSpec) -> list[Bucket]:
        if not spec.count_unique and not spec.metrics:
            out: list[Bucket] = []
            for ts, key, n in await self.aggregate_counts(tenant, where, spec):
                if not out or out[-1].ts != ts:
                    out.append(Bucket(ts, []))
                out[-1].rows.append(AggregateRow(count=n, key=key))
            return out

        return await self._ch(lambda c: self._aggregate_py(c, tenant, where, spec))

    def _aggregate_py(self, c: Any, tenant: str, where: Node, spec: AggregateSpec
                      ) -> list[Bucket]:
        """``aggregate`` over the matching events, in Python (``aggregate`` module)."""
        sql, params, exact = self._base(c, tenant, where)
        pred = None if exact else compile_predicate(where)

        def events() -> Any:
            with c.query_rows_stream(
                    f"SELECT ts, body FROM {self.db}.events FINAL WHERE {sql}",
                    parameters=params, column_formats=_RAW,
                    settings=READ_SETTINGS) as stream:
                for ts, body in stream:
                    ev = orjson.loads(body)
                    if pred is None or pred(ev):
                        yield ts, ev

        return pyagg.aggregate(events(), spec)

    async def aggregate_counts(
        self, tenant: str, where: Node, spec: AggregateSpec
    ) -> list[CountRow]:
        """Counts grouped in ClickHouse when the filter compiles exactly; ordered and cut to
        ``max_groups`` here (rows per bucket are few)."""
        if spec.count_unique or spec.metrics:
            return await super().aggregate_counts(tenant, where, spec)

        def run(c: Any) -> list[CountRow] | None:
            sql, params, exact = self._base(c, tenant, where, fixed=True)
            if not exact:
                return None
            bucket = _bucket_sql(spec.interval)
            key, cond, decode = _group_sql(spec.group_by)
            raw_keys = key.startswith("JSONExtractRaw")
            if not raw_keys:
                counted = (self._rollup_sql(sql, where, spec, params)
                           or f"SELECT {bucket} AS b, {key} AS k, count() AS n FROM "
                              f"{self.db}.events FINAL WHERE {sql} AND {cond} GROUP BY b, k")
                # Text keys (or none): ClickHouse orders and cuts them as the answer does
                # (UTF-8 byte order is code-point order, as Python's str compares).
                return [(b, k, int(n)) for b, k, n in c.query(
                    f"SELECT b, k, n FROM ({counted}) "
                    f"ORDER BY b, n DESC, k LIMIT {int(spec.max_groups)} BY b",
                    parameters=params, settings=READ_SETTINGS).result_rows]
            rows = c.query(
                f"SELECT {bucket} AS b, {key} AS k, count() AS n FROM {self.db}.events FINAL "
                f"WHERE {sql} AND {cond} GROUP BY b, k", parameters=params,
                settings=READ_SETTINGS).result_rows
            merged: dict[Any, dict[Any, list[Any]]] = {}
            for b, k, n in rows:
                value = decode(k)
                if raw_keys and isinstance(value, str) and ambiguous(value):
                    return None  # maybe an integer beyond 64 bits (compile.ambiguous)
                t = pyagg.typed(value) if spec.group_by else None
                if spec.group_by and t is None:
                    continue
                row = merged.setdefault(b, {}).setdefault(t, [value, 0])
                row[1] += n
            out: list[CountRow] = []
            for b in sorted(merged, key=lambda t: (t is not None, t)):
                group = sorted(merged[b].values(), key=lambda r: (-r[1], str(r[0])))
                out += [(b, k, n) for k, n in group[: spec.max_groups]]
            return out

        rows = await self._ch(run)
        if rows is not None:
            return rows
        return [(b.ts, r.key, r.count) for b in await self._ch(
            lambda c: self._aggregate_py(c, tenant, where, spec)) for r in b.rows]

    def _rollup_sql(self, visible: str, where: Node, spec: AggregateSpec,
                    params: dict[str, Any]) -> str | None:
        """The counts of ``where`` as whole hours of complete blocks from the rollup plus
        the rest (edge hours, the block the watermark is in) from ``events``; None when
        the filter or the grouping is not one the rollup's columns answer. ``visible``:
        ``where`` compiled for ``events`` (``_base`` with ``fixed``), whose parameters
        (the watermark ``wm`` among them) are in ``params``; this adds its own."""
        plan = _rollup_plan(where, spec)
        if plan is None:
            return None
        lo, hi, dims = plan
        h0, h1 = -(-lo // rollup.HOUR) * rollup.HOUR, hi // rollup.HOUR * rollup.HOUR
        if h1 <= h0:
            return None
        comp = Compiler(prefix="r")
        dims_sql, exact = comp.where(And(tuple(dims)) if dims else All())
        if not exact:
            return None
        params.update(comp.params.values, h0=h0, h1=h1,
                      full=int(params["wm"]) // self.indexer.rollup.block)
        key, cond, _ = _group_sql(spec.group_by)
        counted = (f"SELECT {_bucket_sql(spec.interval)} AS b, {key} AS k, count() AS n "
                   f"FROM {self.db}.events FINAL WHERE {visible} AND {cond} AND ")
        # The rest as three parts, each one ClickHouse can narrow (by the sort key's time,
        # or the seq skip index): one condition OR-ing them reads the whole range.
        return (
            f"SELECT b, k, sum(n) AS n FROM ("
            f"SELECT {_bucket_sql(spec.interval, 'hour')} AS b, {key} AS k, sum(n) AS n "
            f"FROM {self.db}.{rollup.table(self.indexer.rollup.block)} FINAL "
            "WHERE tenant = {tenant:String} AND hour >= {h0:Int64} AND hour < {h1:Int64} "
            f"AND block < {{full:UInt64}} AND {dims_sql} AND {cond} GROUP BY b, k "
            f"UNION ALL {counted} ts < {{h0:Int64}} GROUP BY b, k "
            f"UNION ALL {counted} ts >= {{h1:Int64}} GROUP BY b, k "
            f"UNION ALL {counted} ts >= {{h0:Int64}} AND ts < {{h1:Int64}} AND "
            f"seq > {{full:UInt64}} * {self.indexer.rollup.block} GROUP BY b, k"
            ") GROUP BY b, k")

    async def scan(
        self, tenant: str, where: Node, *, after_seq: int = 0, batch: int = 1000
    ) -> AsyncIterator[list[dict[str, Any]]]:
        async for raws in self.scan_raw(tenant, where, after_seq=after_seq, batch=batch):
            yield [orjson.loads(b) for b in raws]

    async def scan_raw(
        self, tenant: str, where: Node, *, after_seq: int = 0, batch: int = 1000
    ) -> AsyncIterator[list[bytes]]:
        """``scan`` with each event as its stored JSON."""
        pred = None
        state: dict[str, Any] = {}

        def prepare(c: Any) -> None:
            nonlocal pred
            sql, params, exact = self._base(c, tenant, where, fixed=True)
            pred = None if exact else compile_predicate(where)
            state.update(sql=sql, params=params)

        await self._ch(prepare)
        wm = int(state["params"]["wm"])
        pending: list[bytes] = []
        last = after_seq
        # A query costs ~13 ms under FINAL in chdb whatever it returns (an export's
        # 256-event batches ran at 8k events/s): after the first, a query of light events
        # reads several batches ahead, as many as READ_AHEAD_BYTES of the largest body
        # allows.
        per_query = batch
        ahead = batch >= READ_AHEAD_FROM
        rows_most = min(READ_AHEAD_MOST, batch * READ_AHEAD)
        sizes: _BodySizes | None = None
        # A window a few reads wide rather than SCAN_WINDOW: a query reads (under FINAL)
        # every row of the granules its window touches. A window that comes back short
        # (a selective filter) doubles, up to SCAN_WINDOW.
        width = min(SCAN_WINDOW, max(4096, 4 * per_query))
        while last < wm:
            hi = min(wm, last + width)

            def window(c: Any, lo: int = last, hi: int = hi, n: int = per_query
                       ) -> list[tuple[int, bytes]]:
                rows = c.query(
                    f"SELECT seq, body FROM {self.db}.events FINAL WHERE {state['sql']} AND "
                    f"seq > {{lo:UInt64}} AND seq <= {{hi:UInt64}} ORDER BY seq "
                    f"LIMIT {n}",
                    parameters={**state["params"], "lo": lo, "hi": hi}, column_formats=_RAW,
                    settings=READ_SETTINGS).result_rows
                return [(int(r[0]), bytes(r[1])) for r in rows]

            rows = await self._ch(window)
            full = len(rows) == per_query
            last = rows[-1][0] if full else hi
            if not full:
                width = min(SCAN_WINDOW, 2 * width)
            pending += [b for _, b in rows if pred is None or pred(orjson.loads(b))]
            while len(pending) >= batch:
                yield pending[:batch]
                pending = pending[batch:]
            if ahead and last < wm:  # the caller wants more
                width = max(width, min(SCAN_WINDOW, 4 * rows_most))
                sizes = sizes or _BodySizes(self, tenant, wm)
                body_most = await sizes.largest(last, min(wm, last + width))
                per_query = max(1, min(rows_most, READ_AHEAD_BYTES // max(1, body_most)))
        if pending:
            yield pending

    async def close(self) -> None:
        if self._closed:
            return
        while self._writes:
            self._no_writes.clear()
            await self._no_writes.wait()
        await super().close()
        self.indexer.close()
        self.engine.close()


class _BodySizes:
    """The largest body of each CHUNK seqs of a tenant, read SPAN seqs at a time (~35 ms
    per million events: the lengths alone, ``body.size0``). Read without FINAL: every
    version of a row counts, so the largest bounds the one a scan returns."""

    CHUNK = 4096
    SPAN = 1 << 20

    def __init__(self, store: ClickHouseEventStore, tenant: str, wm: int):
        self.store, self.tenant, self.wm = store, tenant, wm
        self.most: dict[int, int] = {}
        self.read_to = 0  # chunks below this one are in ``most``

    async def largest(self, lo: int, hi: int) -> int:
        """The largest body among seqs ``lo < seq <= hi``."""
        first, last = (lo + 1) // self.CHUNK, hi // self.CHUNK
        if last >= self.read_to:
            start = max(self.read_to, first)
            end = max(last + 1, start + self.SPAN // self.CHUNK)
            db = self.store.db

            def run(c: Any) -> list[tuple[int, int]]:
                return c.query(
                    f"SELECT intDiv(seq, {self.CHUNK}) AS k, max(length(body)) FROM "
                    f"{db}.events WHERE tenant = {{t:String}} AND seq >= {{lo:UInt64}} "
                    "AND seq < {hi:UInt64} AND seq <= {wm:UInt64} GROUP BY k",
                    parameters={"t": self.tenant, "lo": start * self.CHUNK,
                                "hi": end * self.CHUNK, "wm": self.wm}).result_rows

            self.most.update((int(k), int(n)) for k, n in await self.store._ch(run))
            self.read_to = end
        return max((self.most.get(k, 0) for k in range(first, last + 1)), default=0)


def _watermark(c: Any, db: str, tenant: str) -> int:
    rows = c.query(f"SELECT max(seq) FROM {db}.watermarks WHERE tenant = {{t:String}}",
                   parameters={"t": tenant}).result_rows
    return int(rows[0][0] or 0)


def _bad_cursor() -> InvalidRequest:
    return InvalidRequest("cursor is not valid", errors=[
        {"field": "cursor", "reason": "not a cursor returned by this API"}])


def _bucket_sql(interval: str | None, col: str = "ts") -> str:
    if interval is None:
        return "NULL"
    width, offset = pyagg.WIDTHS[interval]
    # Floored as Python's // does (ClickHouse's % truncates toward zero).
    return f"({col} - ((({col} + {offset}) % {width}) + {width}) % {width})"


#: Times beyond any event's (µs): the open ends of a range.
_NEVER = 2**62


def _rollup_plan(where: Node, spec: AggregateSpec) -> tuple[int, int, list[Node]] | None:
    """``(from, to, dims)`` when the rollup can count ``where`` grouped as ``spec`` asks:
    ``where`` is a conjunction of a time range [from, to) and conditions on the rollup's
    columns (``dims``), the grouping is by one of them or none, in buckets of whole hours;
    None otherwise."""
    if spec.count_unique or spec.metrics or (
            spec.group_by is not None and spec.group_by not in rollup.DIMS):
        return None
    if spec.interval is not None:
        width, offset = pyagg.WIDTHS[spec.interval]
        if width % rollup.HOUR or offset % rollup.HOUR:
            return None
    lo, hi, dims = -_NEVER, _NEVER, list[Node]()
    for node in where.children if isinstance(where, And) else (where,):
        if isinstance(node, All):
            continue
        if isinstance(node, Eq | Cmp) and node.path in rollup.DIMS:
            dims.append(node)
            continue
        if not isinstance(node, Cmp) or node.path != "timestamp":
            return None
        value = node.value
        if isinstance(value, str):
            try:
                value = time_value(value, "timestamp")
            except InvalidRequest:
                return None
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        if node.op in (">", ">="):
            lo = max(lo, value + (node.op == ">"))
        else:
            hi = min(hi, value + (node.op == "<="))
    return lo, hi, dims


def _group_sql(path: str | None) -> tuple[str, str, Callable[[Any], Any]]:
    """(key expression, condition that leaves out rows without a key, key decoder)."""
    if path is None:
        return "NULL", "1", lambda k: None
    if path == "severity":
        names = ", ".join(f"'{s}'" for s in SEVERITIES)
        return f"arrayElement([{names}], sev + 1)", "1", lambda k: k
    if path in STRING_COLUMNS and path not in INT_COLUMNS:
        col = STRING_COLUMNS[path]
        return f"assumeNotNull({col})", f"ifNull({col} != '', 0)", lambda k: k
    args = json_args(path)
    return (f"JSONExtractRaw({args})",
            f"JSONType({args}) NOT IN ('Null', 'Object', 'Array')",
            lambda k: orjson.loads(k))


__all__ = ["ClickHouseEventStore"]
