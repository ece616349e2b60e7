"""Read-path figures, each next to its baseline from the same run (issue 8, "Faster answers").

    python -m bench.reads build FILE [--events N] [--tenants T]   # the bench stream, ingested
    python -m bench.reads measure FILE [--workers N]               # prints one JSON document

``build`` sends ``bench.gen`` events through the real ingest pipeline in-process (no HTTP),
1,000-event requests per tenant, and creates a key for the largest tenant. ``measure``:

* the aggregate ``group_by=type&interval=hour`` over the last 30 days of the largest tenant:
  its SQL alone (the statements the store runs, captured and replayed on a warm
  connection), the store call in-process, and ``GET /v1/events/aggregate`` at 1 client;
* list pages (50 and 1,000 events, and a filtered one) and ``GET /v1/events/{id}`` at
  1 client, next to ``/healthz`` on the same server;
* storage: file bytes per event, stored body bytes per event, rollup rows and bytes.

The machine is shared: compare ratios within one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from .gen import bench_events
from .run import free_port, python_bin

DAY_MS = 86_400_000


def p50_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


async def build(db: Path, events: int, tenants: int) -> dict[str, Any]:
    from auditstream.app import build_services
    from auditstream.settings import Settings

    svc = build_services(Settings.from_env().with_(db=str(db), demo=False))
    buffers: dict[str, list[dict[str, Any]]] = {}
    counts: dict[str, int] = {}
    sent = 0
    t0 = time.perf_counter()

    async def put(tenant: str, batch: list[dict[str, Any]]) -> None:
        await svc.ingestor.ingest(tenant, orjson.dumps(batch), "application/json")

    try:
        for tenant, ev in bench_events(events, seed=1, now_us=time.time_ns() // 1000,
                                       tenants=tenants):
            sent += len(orjson.dumps(ev))
            counts[tenant] = counts.get(tenant, 0) + 1
            buffers.setdefault(tenant, []).append(ev)
            if len(buffers[tenant]) >= 1000:
                await put(tenant, buffers.pop(tenant))
        for tenant, batch in buffers.items():
            await put(tenant, batch)
    finally:
        await svc.store.close()
    largest = max(counts, key=lambda t: counts[t])
    cli = [python_bin(), "-m", "auditstream"]
    subprocess.run([*cli, "tenants", "create", largest, "--db", str(db)], check=True,
                   capture_output=True)
    out = subprocess.run([*cli, "keys", "create", "--tenant", largest, "--json", "--db",
                          str(db)], check=True, capture_output=True).stdout
    key = json.loads(out.strip().splitlines()[-1])["key"]
    meta = {"tenant": largest, "key": key, "events": events,
            "sent_bytes_per_event": round(sent / events, 1),
            "seconds": round(time.perf_counter() - t0, 1)}
    Path(str(db) + ".bench.json").write_text(json.dumps(meta))
    return meta


def storage(db: Path) -> dict[str, Any]:
    from auditstream.dbapi import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        n, body = conn.execute(
            "SELECT COUNT(*), SUM(length(CAST(body AS BLOB))) FROM events").fetchone()
        tables = dict(conn.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"))
        rollups = {name: conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]
                   for name in ("rollup_day", "rollup_hour") if name in tables}
        return {"events": n, "file_bytes_per_event": round(sum(tables.values()) / n, 1),
                "body_bytes_per_event": round(body / n, 1),
                "rollup_rows": rollups,
                "rollup_bytes": {k: tables[k] for k in rollups},
                "largest_objects_bytes_per_event": {
                    k: round(v / n, 1) for k, v in list(tables.items())[:8]}}
    finally:
        conn.close()


async def in_process(db: Path, tenant: str, now_ms: int, n: int) -> dict[str, Any]:
    from auditstream.query.params import AGGREGATE_PARAMS, filter_from_params
    from auditstream.store.base import AggregateSpec
    from auditstream.store.sqlite import SQLiteEventStore

    class ReadOnly:  # a channel to no writer: this store only reads
        async def request(self, _request: object) -> Any:
            raise RuntimeError("read-only")

        async def close(self) -> None:
            return None

    store = SQLiteEventStore(db, channel=ReadOnly(), readers=1)  # type: ignore[arg-type]
    where = filter_from_params(aggregate_params(now_ms), allowed=AGGREGATE_PARAMS)
    spec = AggregateSpec(group_by="type", interval="hour")
    call = getattr(store, "aggregate_counts", store.aggregate)  # also times older engines
    reader = store._readers.get()
    store._readers.put(reader)
    statements: list[str] = []
    reader.conn.set_trace_callback(statements.append)
    await call(tenant, where, spec)
    reader.conn.set_trace_callback(None)
    statements = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))
                  and "sqlite_stat" not in s]
    sql, whole = [], []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            for s in statements:
                reader.conn.execute(s).fetchall()
            sql.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await call(tenant, where, spec)
            whole.append(time.perf_counter() - t0)
    finally:
        await store.close()
    return {"aggregate_sql_alone_p50_ms": p50_ms(sql), "aggregate_store_p50_ms": p50_ms(whole),
            "aggregate_statements": len(statements)}


async def under_ingest(db: Path, tenant: str, now_ms: int, n: int) -> dict[str, Any]:
    """The aggregate right after each commit of one event (adds 3n events to the file): for
    the current hour, for a random hour of the last 30 days (a late event), and with the
    hour cache off (every request counts its whole range)."""
    import random

    from auditstream.app import build_store
    from auditstream.model.ids import new_event_id
    from auditstream.model.times import format_us
    from auditstream.query.params import AGGREGATE_PARAMS, filter_from_params
    from auditstream.settings import Settings
    from auditstream.store.base import AggregateSpec
    from auditstream.store.sqlite.hourcache import HourCache

    store = build_store(Settings.from_env().with_(db=str(db)))
    where = filter_from_params(aggregate_params(now_ms), allowed=AGGREGATE_PARAMS)
    spec = AggregateSpec(group_by="type", interval="hour")
    rnd = random.Random(1)
    out: dict[str, Any] = {}
    try:
        for name, late, cache in (("current_hour", False, True), ("late_event", True, True),
                                  ("cache_off", False, False)):
            if not cache:
                store.hour_cache = HourCache(max_rows=0)
            await store.aggregate_counts(tenant, where, spec)
            lat = []
            for _ in range(n):
                ts = (now_ms - rnd.randrange(30 * DAY_MS)) if late else time.time_ns() // 1000_000
                await store.append(tenant, [{
                    "id": new_event_id(), "tenant": tenant, "type": "bench.late",
                    "severity": "info", "timestamp": format_us(ts * 1000),
                    "received_at": format_us(time.time_ns() // 1000)}])
                t0 = time.perf_counter()
                await store.aggregate_counts(tenant, where, spec)
                lat.append(time.perf_counter() - t0)
            out[f"aggregate_after_each_commit_{name}_p50_ms"] = p50_ms(lat)
    finally:
        await store.close()
    return out


def aggregate_params(now_ms: int) -> list[tuple[str, str]]:
    return [("group_by", "type"), ("interval", "hour"), ("since", str(now_ms - 30 * DAY_MS))]


def over_http(db: Path, key: str, now_ms: int, workers: int, n: int) -> dict[str, Any]:
    port = free_port()
    env = dict(os.environ, AUDITSTREAM_WORKERS=str(workers))
    proc = subprocess.Popen([python_bin(), "-m", "auditstream", "serve", "--db", str(db),
                             "--port", str(port), "--no-demo"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out: dict[str, Any] = {}
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key},
                              timeout=120)
        deadline = time.monotonic() + 120
        while True:
            try:
                client.get("/healthz")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.1)

        def run(name: str, path: str, params: list[tuple[str, str]], times: int) -> Any:
            lat = []
            for i in range(times + 2):  # two warm-up requests
                t0 = time.perf_counter()
                r = client.get(path, params=params)
                if i >= 2:
                    lat.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
            out[f"{name}_p50_ms"] = p50_ms(lat)
            out[f"{name}_bytes"] = len(r.content)
            return r

        run("aggregate", "/v1/events/aggregate", aggregate_params(now_ms), n)
        run("healthz", "/healthz", [], 10 * n)
        first = run("page50", "/v1/events", [("limit", "50")], 10 * n)
        run("page1000", "/v1/events", [("limit", "1000")], 2 * n)
        run("page_filtered", "/v1/events", [
            ("type", "login"), ("severity", "info"), ("since", str(now_ms - 7 * DAY_MS)),
            ("limit", "50")], 10 * n)
        run("get", f"/v1/events/{first.json()['data'][7]['id']}", [], 10 * n)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.reads")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("db", type=Path)
    b.add_argument("--events", type=int, default=1_000_000)
    b.add_argument("--tenants", type=int, default=200)
    m = sub.add_parser("measure")
    m.add_argument("db", type=Path)
    m.add_argument("--workers", type=int, default=1)
    m.add_argument("--repeat", type=int, default=21)
    m.add_argument("--no-http", action="store_true")
    m.add_argument("--ingest", action="store_true",
                   help="also time the aggregate after each commit (appends to the file)")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        print(json.dumps(asyncio.run(build(args.db, args.events, args.tenants)), indent=1))
        return 0
    meta = json.loads(Path(str(args.db) + ".bench.json").read_text())
    now_ms = time.time_ns() // 1_000_000
    doc: dict[str, Any] = {"tenant": meta["tenant"], "storage": storage(args.db),
                           "in_process": asyncio.run(in_process(args.db, meta["tenant"],
                                                                now_ms, args.repeat))}
    if args.ingest:
        doc["in_process"].update(asyncio.run(under_ingest(args.db, meta["tenant"], now_ms,
                                                          args.repeat)))
    if not args.no_http:
        h = over_http(args.db, meta["key"], now_ms, args.workers, args.repeat)
        doc["http_1_client"] = h
        doc["aggregate_http_p50_over_sql_alone"] = round(
            h["aggregate_p50_ms"] / doc["in_process"]["aggregate_sql_alone_p50_ms"], 2)
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
