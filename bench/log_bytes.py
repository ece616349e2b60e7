"""Disk per event of the clickhouse backend's log, with and without the body drop.

    python -m bench.log_bytes [--events N] [--tenants T]

Appends the same N real-shaped events (``bench/gen.py``) through ``ClickHouseEventStore``
twice, in commits of 1,000, signed, with the server's default indexed paths: once keeping
the log's bodies, once with ``drop_bodies`` (``AUDITSTREAM_DROP_INDEXED_BODIES``). For each
it prints the SQLite log's bytes in use per event (pages minus free pages: a file does not
shrink, it reuses what a drop freed), the largest objects in it, and the ClickHouse index's
bytes per event; one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from auditstream.dbapi import sqlite3
from auditstream.ingest.pipeline import normalise
from auditstream.integrity.checkpoint import generate_signer
from auditstream.model.times import now_us
from auditstream.settings import Settings
from auditstream.store.clickhouse import ClickHouseEventStore

from .gen import bench_events
from .run import tree_bytes


def log_usage(db: Path, events: int) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        pages, free, size = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                             for p in ("page_count", "freelist_count", "page_size"))
        objects = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name "
                               "ORDER BY 2 DESC LIMIT 6").fetchall()
    finally:
        conn.close()
    return {"log_bytes_per_event": round((pages - free) * size / events, 1),
            "log_file_bytes_per_event": round(pages * size / events, 1),
            "largest_objects_bytes_per_event": {k: round(v / events, 1) for k, v in objects}}


async def load(work: Path, events: list[tuple[str, dict[str, Any]]], drop: bool
               ) -> dict[str, Any]:
    store = ClickHouseEventStore(
        work / "log.db", clickhouse_url=f"chdb://{work / 'ch'}",
        signer=generate_signer("bench.local"), deployment="bench.local",
        indexed_paths=Settings().indexed_path_list, drop_bodies=drop)
    t0 = time.perf_counter()
    try:
        by_tenant: dict[str, list[dict[str, Any]]] = {}

        async def send(tenant: str, batch: list[dict[str, Any]]) -> None:
            # As ingest hands them over: server fields and defaults filled in.
            ready, client_ids = normalise(batch, tenant=tenant, received_us=now_us())
            await store.append(tenant, ready, client_ids=client_ids)
            batch.clear()

        for tenant, ev in events:
            batch = by_tenant.setdefault(tenant, [])
            batch.append(ev)
            if len(batch) == 1000:
                await send(tenant, batch)
        for tenant, batch in by_tenant.items():
            if batch:
                await send(tenant, batch)
        seconds = time.perf_counter() - t0
    finally:
        await store.close()
    n = len(events)
    return {"drop_bodies": drop, "seconds": round(seconds, 1),
            "events_per_s": round(n / seconds), **log_usage(work / "log.db", n),
            "index_bytes_per_event": round(tree_bytes(work / "ch") / n, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.log_bytes")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--tenants", type=int, default=10)
    args = ap.parse_args(argv)
    events = list(bench_events(args.events, seed=3, tenants=args.tenants))
    out: dict[str, Any] = {"events": args.events, "tenants": args.tenants, "runs": []}
    for drop in (False, True):
        with tempfile.TemporaryDirectory(prefix="auditstream-logbytes-") as tmp:
            print(f"[log_bytes] drop_bodies={drop}", file=sys.stderr, flush=True)
            out["runs"].append(asyncio.run(load(Path(tmp), events, drop)))
    keep, drop = out["runs"]
    out["log_bytes_ratio_dropped_to_kept"] = round(
        drop["log_bytes_per_event"] / keep["log_bytes_per_event"], 3)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
