"""Appends through the stores alone, without HTTP: where the clickhouse backend's ingest
goes, against the sqlite backend's in the same run.

    python -m bench.store_ingest [--events N] [--clients C] [--repeat R]

The same N real-shaped events (``bench/gen.py``, 10 tenants, signed, the server's default
indexed paths), normalised beforehand, are appended in requests of 1,000 (a tenant's last
one smaller) by C concurrent callers, as the HTTP ingest hands them over: through
``SQLiteEventStore`` and through ``ClickHouseEventStore`` (embedded chdb). Runs are
interleaved R times; each prints events/s and the process's CPU per event. One JSON
document on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from auditstream.ingest.pipeline import normalise
from auditstream.integrity.checkpoint import generate_signer
from auditstream.model.times import now_us
from auditstream.settings import Settings
from auditstream.store.base import EventStore
from auditstream.store.clickhouse import ClickHouseEventStore
from auditstream.store.sqlite.store import SQLiteEventStore

from .gen import bench_events

Request = tuple[str, list[dict[str, Any]], frozenset[int]]


def requests(n: int) -> list[Request]:
    by_tenant: dict[str, list[dict[str, Any]]] = {}
    out: list[Request] = []
    for tenant, ev in bench_events(n, seed=3, tenants=10):
        batch = by_tenant.setdefault(tenant, [])
        batch.append(ev)
        if len(batch) == 1000:
            out.append((tenant, *normalise(batch, tenant=tenant, received_us=now_us())))
            by_tenant[tenant] = []
    out += [(tenant, *normalise(batch, tenant=tenant, received_us=now_us()))
            for tenant, batch in by_tenant.items() if batch]
    return out


def open_store(kind: str, work: Path) -> EventStore:
    kw: dict[str, Any] = {"signer": generate_signer("bench.local"),
                          "deployment": "bench.local",
                          "indexed_paths": Settings().indexed_path_list}
    if kind == "sqlite":
        return SQLiteEventStore(work / "log.db", **kw)
    return ClickHouseEventStore(work / "log.db", clickhouse_url=f"chdb://{work / 'ch'}", **kw)


async def run(kind: str, reqs: list[Request], clients: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="auditstream-storeingest-") as tmp:
        store = open_store(kind, Path(tmp))
        try:
            c0, t0 = os.times(), time.perf_counter()

            async def caller(k: int) -> None:
                for tenant, ready, ids in reqs[k::clients]:
                    # prepare() writes into the events it is given: a copy per run.
                    await store.append(tenant, [dict(e) for e in ready], client_ids=ids)

            await asyncio.gather(*(caller(k) for k in range(clients)))
            seconds = time.perf_counter() - t0
            c1 = os.times()
        finally:
            await store.close()
    n = sum(len(r[1]) for r in reqs)
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return {"events_per_s": round(n / seconds), "cpu_cores": round(cpu / seconds, 2),
            "cpu_us_per_event": round(cpu / n * 1e6)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.store_ingest")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    reqs = requests(args.events)
    kinds = ["sqlite", "clickhouse"]
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for r in range(args.repeat):
        for kind in kinds:
            out = asyncio.run(run(kind, reqs, args.clients))
            print(f"[store_ingest] run {r + 1} {kind}: {out}", file=sys.stderr, flush=True)
            runs[kind].append(out)
    median = {k: statistics.median(x["events_per_s"] for x in v) for k, v in runs.items()}
    print(json.dumps({
        "events": args.events, "clients": args.clients, "runs": runs,
        "median_events_per_s": median,
        "clickhouse_to_sqlite": round(median["clickhouse"] / median["sqlite"], 2)},
        indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
