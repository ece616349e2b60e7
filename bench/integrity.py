"""Benchmark of tamper evidence: ingest cost, proof latency, offline verification rate.

    python -m bench.integrity [--leaves N] [--ingest M] [--out FILE]   (make bench: N = 1,000,000)

Prints one JSON document; every figure stands next to a baseline measured in this run:

* ingest with integrity on vs off: the same M events (1,000-event requests, 4 concurrent
  clients) into two fresh servers, one started with ``AUDITSTREAM_INTEGRITY=false``;
* inclusion proofs in one tenant of N leaves, over HTTP, one client, random events, against
  ``GET /v1/events/{id}`` of the same events on the same server;
* ``auditstream verify --db`` over those N events, against a bare ``SELECT body`` scan of
  the same rows (the read ceiling).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from auditstream.dbapi import sqlite3

from .gen import bench_events
from .run import free_port, python_bin

CLI = [python_bin(), "-m", "auditstream"]


def log(msg: str) -> None:
    print(f"[integrity] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 3)


class Server:
    def __init__(self, db: Path, *, integrity: bool = True):
        self.db, self.port = db, free_port()
        env = dict(os.environ, AUDITSTREAM_INTEGRITY="true" if integrity else "false")
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--db", str(db), "--port", str(self.port), "--no-demo"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/healthz", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def make_key(db: Path, tenant: str) -> str:
    subprocess.run([*CLI, "tenants", "create", tenant, "--db", str(db)], check=True,
                   capture_output=True)
    out = subprocess.run([*CLI, "keys", "create", "--tenant", tenant, "--json", "--db", str(db)],
                         check=True, capture_output=True).stdout
    return str(orjson.loads(out)["key"])


def bodies(n: int, seed: int) -> list[bytes]:
    evs = [e for _, e in bench_events(n, seed=seed)]
    return [orjson.dumps(evs[i:i + 1000]) for i in range(0, n, 1000)]


async def post_all(url: str, key: str, chunks: list[bytes], clients: int = 4) -> float:
    queue = list(reversed(chunks))

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key},
                                     timeout=120) as c:
            while queue:
                r = await c.post("/v1/events", content=queue.pop())
                r.raise_for_status()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - start


def ingest_on_off(work: Path, m: int) -> dict[str, Any]:
    chunks = bodies(m, seed=11)
    rates = {}
    for integrity in (False, True):
        db = work / f"ingest-{integrity}.db"
        key = make_key(db, "t")
        srv = Server(db, integrity=integrity)
        try:
            rates[integrity] = m / asyncio.run(post_all(srv.url, key, chunks))
        finally:
            srv.stop()
        log(f"ingest integrity={integrity}: {rates[integrity]:.0f} events/s")
    cost = 1 - rates[True] / rates[False]
    return {"value": round(rates[True]), "unit": "events/s",
            "baseline": {"name": "integrity_off_events_per_s", "value": round(rates[False])},
            "ratio": round(rates[True] / rates[False], 3), "cost": round(cost, 3),
            "target": "cost <= 0.15", "pass": cost <= 0.15}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--leaves", type=int, default=1_000_000)
    ap.add_argument("--ingest", type=int, default=100_000)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="auditstream-integrity-"))
    figures: dict[str, Any] = {"integrity_ingest": ingest_on_off(work, args.ingest)}

    db = work / "proofs.db"
    key = make_key(db, "big")
    srv = Server(db)
    try:
        log(f"loading {args.leaves} events into one tenant")
        chunks: list[bytes] = []
        for i in range(0, args.leaves, 100_000):
            chunks = bodies(min(100_000, args.leaves - i), seed=100 + i)
            asyncio.run(post_all(srv.url, key, chunks))
        ids = [row[0] for row in sqlite3.connect(db).execute(
            "SELECT id FROM events WHERE tenant = 'big' ORDER BY random() LIMIT 300")]
        with httpx.Client(base_url=srv.url, headers={"X-API-Key": key}) as c:
            proof_t, get_t = [], []
            for eid in ids:
                t = time.perf_counter()
                r = c.get("/v1/integrity/proof/inclusion", params={"event_id": eid})
                proof_t.append(time.perf_counter() - t)
                assert r.status_code == 200 and r.json()["tree_size"] == args.leaves, r.text
                t = time.perf_counter()
                c.get(f"/v1/events/{eid}").raise_for_status()
                get_t.append(time.perf_counter() - t)
        figures["inclusion_proof_p50_ms"] = {
            "value": pct(proof_t, 0.5), "unit": "ms", "leaves": args.leaves,
            "baseline": {"name": "get_event_p50_ms", "value": pct(get_t, 0.5)},
            "p99_ms": pct(proof_t, 0.99), "target": "< 5", "pass": pct(proof_t, 0.5) < 5}
    finally:
        srv.stop()

    t = time.perf_counter()
    rows = sum(1 for _ in sqlite3.connect(db).execute("SELECT body FROM events"))
    scan_s = time.perf_counter() - t
    t = time.perf_counter()
    p = subprocess.run([*CLI, "verify", "--db", str(db)], capture_output=True, text=True)
    verify_s = time.perf_counter() - t
    assert p.returncode == 0, p.stderr
    rate = rows / verify_s
    figures["verify_events_per_s"] = {
        "value": round(rate), "unit": "events/s", "events": rows,
        "seconds": round(verify_s, 1),
        "baseline": {"name": "select_body_scan_rows_per_s", "value": round(rows / scan_s)},
        "ratio": round(rate / (rows / scan_s), 3), "target": ">= 100000",
        "pass": rate >= 100_000}
    doc = {"command": " ".join(["python -m bench.integrity", *(argv or sys.argv[1:])]),
           "figures": figures, "cpus": os.cpu_count()}
    text = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
