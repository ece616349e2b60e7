"""The ClickHouse index at a size HTTP ingest cannot reach in a session: N events (10 M by
default) written straight into the index, then read through ``ClickHouseEventStore``'s own
methods (the code the API runs).

    python -m bench.clickhouse_scale [--events N] [--pool P] [--workdir DIR] [--out FILE]

What it does (progress on stderr, one JSON document on stdout and in ``--out``):

1. ``bench/gen.py`` makes a pool of P real-shaped events (200,000 by default); each becomes
   an index row as the transfer makes it (``transfer.index_row``: columns, search words).
2. ClickHouse copies the pool into ``events`` N times over with ``INSERT … SELECT`` from
   ``numbers(N)``, giving each copy its tenant, a gap-free per-tenant seq, a timestamp
   over the last 30 days in seq order, an id, and a body with those fields: tenant
   ``big`` holds 20 % of the events, 80 others 1 % each. Watermarks at each tenant's last
   seq. **Not measured here: ingest** (the log is empty; nothing went through the
   pipeline), which ``bench.run --backend clickhouse`` measures over HTTP.
3. Reads through the store, each alone, one client: a filtered page (two equality filters
   and the last 7 days, 50 events; tenants at random), the type × hour aggregate over 30
   days of the largest tenant, full-text pages of a rare and a common term on the largest
   tenant, an export-like ``scan`` of the largest tenant (events/s, bodies as bytes and
   parsed) and the API's NDJSON export of it without the HTTP (``scan_raw_batches``),
   and the index's bytes on disk per event; three times: as loaded (while background
   merges of the load run), once those merges have settled (``system.merges`` idle: the
   parts a node keeps between loads), and after ``OPTIMIZE … FINAL`` (one part per month).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from auditstream.export import NdjsonEncoder, scan_raw_batches
from auditstream.query.filter import All, And, Cmp, Eq, Text
from auditstream.settings import Settings
from auditstream.store.base import AggregateSpec, EventQuery
from auditstream.store.clickhouse import ClickHouseEventStore, rollup
from auditstream.store.clickhouse.transfer import COLUMNS, index_row

from .gen import bench_events

US = 1_000_000
DAY = 86_400 * US
PAGE_FILTERS = (("type", "login"), ("outcome", "failure"), ("type", "install"),
                ("subject.ecosystem", "npm"), ("type", "llm.call"), ("outcome", "success"))
#: 20 % of the events are the largest tenant's; the others share 80 tenants.
OTHERS = 80


def log(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ms_summary(values: list[float]) -> dict[str, Any]:
    v = sorted(values)
    return {"n": len(v), "p50_ms": round(statistics.median(v) * 1000, 2),
            "p99_ms": round(v[min(len(v) - 1, int(0.99 * len(v)))] * 1000, 2),
            "max_ms": round(v[-1] * 1000, 2)}


def build_pool(store: ClickHouseEventStore, n: int, now: int) -> str:
    """The pool table; returns a rare search term of it (in ~1 of 100,000 events)."""
    db = store.db
    rows = []
    words: Counter[str] = Counter()
    for i, (_, ev) in enumerate(bench_events(n, seed=7, now_us=now, tenants=OTHERS)):
        ev = {k: v for k, v in ev.items() if k not in ("timestamp", "received_at")}
        ev.update(id="evt_x", timestamp="2026-01-01T00:00:00Z",
                  received_at="2026-01-01T00:00:00Z")
        row = index_row("pool", i, orjson.dumps(ev))
        # The body without its first field (the id) and its own time fields: each copy
        # writes its own in front.
        rest = {k: v for k, v in ev.items() if k not in ("id", "timestamp", "received_at")}
        rows.append([i, *row[5:10], orjson.dumps(rest)[1:], row[11]])
        words.update(set(row[11].split()))
    with store.engine.client() as c:
        c.command(f"CREATE TABLE {db}.pool (i UInt32, id String, type String, "
                  "category Nullable(String), sev UInt8, outcome Nullable(String), "
                  "rest String, words String) ENGINE = Memory")
        c.insert(f"{db}.pool", rows, column_names=["i", "id", "type", "category", "sev",
                                                   "outcome", "rest", "words"])
    rare = [w for w, k in words.items() if k == max(1, n // 100_000) and w.isalpha()
            and len(w) > 4]
    return sorted(rare)[0] if rare else "typosquat"


def fill(store: ClickHouseEventStore, n: int, pool: int, now: int) -> dict[str, int]:
    db = store.db
    start = now - 30 * DAY
    step = max(1, 30 * DAY // n)
    tenant = "if(number % 100 < 20, 'big', concat('t', toString(number % 100 - 20)))"
    seq = "if(number % 100 < 20, intDiv(number, 100) * 20 + number % 100 + 1, " \
          "intDiv(number, 100) + 1)"
    ts = f"toInt64({start} + number * {step})"
    when = f"formatDateTime(fromUnixTimestamp64Micro({ts}, 'UTC'), '%Y-%m-%dT%H:%i:%S.%fZ')"
    chunk = 1_000_000
    cols = ", ".join(COLUMNS)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        t0 = time.perf_counter()
        with store.engine.client() as c:
            c.command(
                f"INSERT INTO {db}.events ({cols}) SELECT {tenant} AS tenant, {seq} AS seq, "
                f"{ts} AS ts, ts AS received, 0 AS ver, concat('evt_', hex(number)) AS id, "
                "p.type, p.category, p.sev, p.outcome, "
                f"concat('{{\"id\":\"', id, '\",\"tenant\":\"', tenant, '\",\"seq\":', "
                f"toString(seq), ',\"timestamp\":\"', {when}, '\",\"received_at\":\"', "
                f"{when}, '\",', p.rest) AS body, p.words "
                f"FROM numbers({lo}, {hi - lo}) AS n "
                f"JOIN {db}.pool AS p ON p.i = n.number % {pool}",
                settings={"max_partitions_per_insert_block": 0})
        log(f"  {hi:,} events ({(hi - lo) / (time.perf_counter() - t0):,.0f}/s)")
    counts = {"big": n // 100 * 20 + min(20, n % 100)}
    for k in range(OTHERS):
        counts[f"t{k}"] = n // 100 + (1 if n % 100 > 20 + k else 0)
    with store.engine.client() as c:
        c.insert(f"{db}.watermarks", [[t, s] for t, s in counts.items() if s],
                 column_names=["tenant", "seq"])
        c.command(f"DROP TABLE {db}.pool")
        # The hourly counts the indexer would have kept (what `migrate` does for an index
        # that has none).
        t0 = time.perf_counter()
        rollup.backfill(c, db, rollup.BLOCK)
        log(f"  hourly counts in {time.perf_counter() - t0:.1f} s")
    return counts


async def measure(store: ClickHouseEventStore, counts: dict[str, int], now: int, rare: str,
                  seconds: float) -> dict[str, Any]:
    rng = random.Random(3)
    out: dict[str, Any] = {}
    tenants = [t for t, k in counts.items() if k]
    lat: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(lat) < 20:
        (p1, v1), (p2, v2) = rng.sample(PAGE_FILTERS, 2)
        where = And((Eq(p1, (v1,)), Eq(p2, (v2,)), Cmp("timestamp", ">=", now - 7 * DAY)))
        t0 = time.perf_counter()
        await store.query(rng.choice(tenants), EventQuery(where, limit=50))
        lat.append(time.perf_counter() - t0)
    out["page"] = ms_summary(lat)
    spec = AggregateSpec(group_by="type", interval="hour")
    where_agg = And((Cmp("timestamp", ">=", now - 30 * DAY), Cmp("timestamp", "<", now)))
    lat = []
    rows = 0
    for _ in range(7):
        t0 = time.perf_counter()
        rows = len(await store.aggregate_counts("big", where_agg, spec))
        lat.append(time.perf_counter() - t0)
    out["aggregate_type_hour_30d_largest"] = {**ms_summary(lat), "rows": rows,
                                              "tenant_events": counts["big"]}
    for name, term in (("rare", rare), ("common", "login")):
        lat = []
        found = 0
        for _ in range(7):
            t0 = time.perf_counter()
            page = await store.query("big", EventQuery(Text((term,)), limit=50,
                                                       include_total=False))
            lat.append(time.perf_counter() - t0)
            found = len(page.events)
        out[f"fulltext_{name}"] = {**ms_summary(lat), "term": term, "page_events": found}
    t0 = time.perf_counter()
    n = 0
    async for batch in store.scan_raw("big", All(), batch=5000):
        n += len(batch)
    s = time.perf_counter() - t0
    out["export_scan_raw"] = {"events": n, "seconds": round(s, 2),
                              "events_per_s": round(n / s)}
    # What GET /v1/events/export?format=ndjson does but the HTTP: batches sized in bytes
    # (export.scan_raw_batches), the stored JSON written as lines.
    t0 = time.perf_counter()
    n = size = 0
    enc = NdjsonEncoder()
    async for raws in scan_raw_batches(store, "big", All()):
        n += len(raws)
        size += len(enc.encode_raw(raws))
    s = time.perf_counter() - t0
    out["export_ndjson_as_the_api"] = {"events": n, "seconds": round(s, 2),
                                       "events_per_s": round(n / s), "bytes": size}
    t0 = time.perf_counter()
    n = 0
    async for parsed in store.scan("big", All(), batch=5000):
        n += len(parsed)
        if n >= 500_000:  # enough for a rate; parsing every body is the slow part
            break
    s = time.perf_counter() - t0
    out["export_scan_parsed"] = {"events": n, "seconds": round(s, 2),
                                 "events_per_s": round(n / s)}
    return out


def settle(store: ClickHouseEventStore, most: float) -> float:
    """Wait until no merge of ``events`` has run for 10 s (at most ``most`` seconds); the
    seconds waited. On two cores a page measured during the load's merges competes with
    them for the CPU: the first read set measures that, this one what follows."""
    t0 = time.perf_counter()
    idle_since = None
    while time.perf_counter() - t0 < most:
        with store.engine.client() as c:
            busy = c.query("SELECT count() FROM system.merges WHERE database = {d:String} "
                           "AND table = 'events'", parameters={"d": store.db}
                           ).result_rows[0][0]
        now = time.perf_counter()
        if busy:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since >= 10:
            break
        time.sleep(1)
    return round(time.perf_counter() - t0, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.clickhouse_scale")
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--pool", type=int, default=200_000)
    ap.add_argument("--query-seconds", type=float, default=10)
    ap.add_argument("--settle-seconds", type=float, default=600,
                    help="most seconds to wait for background merges to go idle")
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="auditstream-chscale-", dir=args.workdir))
    report: dict[str, Any] = {"command": "python -m bench.clickhouse_scale " + " ".join(
        sys.argv[1:] if argv is None else argv), "events": args.events}
    try:
        # The paths a server declares by default: their columns are what a page filtered
        # by subject.ecosystem reads.
        store = ClickHouseEventStore(work / "log.db", clickhouse_url=f"chdb://{work / 'ch'}",
                                     indexed_paths=Settings().indexed_path_list)
        now = time.time_ns() // 1000
        t0 = time.perf_counter()
        log(f"pool of {args.pool:,} events")
        rare = build_pool(store, args.pool, now)
        log(f"filling {args.events:,} events")
        counts = fill(store, args.events, args.pool, now)
        report["fill_seconds"] = round(time.perf_counter() - t0, 1)

        def parts() -> dict[str, Any]:
            with store.engine.client() as c:
                n, size = c.query(
                    "SELECT count(), sum(bytes_on_disk) FROM system.parts WHERE database = "
                    f"'{store.db}' AND table = 'events' AND active").result_rows[0]
            return {"parts": int(n), "bytes": int(size),
                    "bytes_per_event": round(int(size) / args.events, 1)}

        # As loaded (the parts background merges left), then merged to one part per month.
        report["index_as_loaded"] = parts()
        log(f"reads, as loaded ({report['index_as_loaded']['parts']} parts)")
        report["reads_as_loaded"] = asyncio.run(
            measure(store, counts, now, rare, args.query_seconds))
        report["settle_seconds"] = settle(store, args.settle_seconds)
        report["index_settled"] = parts()
        log(f"reads, merges settled ({report['index_settled']['parts']} parts)")
        report["reads_settled"] = asyncio.run(
            measure(store, counts, now, rare, args.query_seconds))
        t0 = time.perf_counter()
        with store.engine.client() as c:
            c.command(f"OPTIMIZE TABLE {store.db}.events FINAL")
        report["optimize_seconds"] = round(time.perf_counter() - t0, 1)
        report["index_merged"] = parts()
        log(f"reads, merged ({report['index_merged']['parts']} parts)")
        report["reads_merged"] = asyncio.run(
            measure(store, counts, now, rare, args.query_seconds))
        asyncio.run(store.close())
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
