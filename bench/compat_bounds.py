"""The two bounds of issue 7: deep turqoa pages sorted by severity, and parallel CSV exports.

Builds (or reuses) a database of ``--events`` events from ``bench.gen`` through the real
ingest pipeline in-process (no HTTP: the build is set-up, not a measurement), starts
``python -m auditstream serve`` on it, and measures against the largest tenant (``t000``):

* ``deep_page``: ``GET /compat/turqoa/v1/events?sort=severity&start_date=<window
  start>&per_page=200&page=P`` for a shallow and deep pages, alone and four in parallel,
  and meanwhile the latency of a plain native page of another tenant (``t001``), which
  shows whether one tenant's deep pages slow everybody else. Run it with
  ``AUDITSTREAM_COMPAT_TURQOA_SCOPE=`` (the whole stream) to compare with an engine that
  had no turqoa scope: the same 120k events then match;
* ``exports_t000_csv``: ``GET /v1/events/export?format=csv`` alone and
  ``--parallel-exports`` at once, with the server's peak RSS (``VmHWM`` after a reset
  through ``clear_refs``, and ``VmRSS`` sampled every 20 ms). The responses are read as
  fast as the client can;
* ``exports_big_csv``: the same on a second database whose one tenant holds
  ``--big-events`` events of ``--big-kb`` KB each, where memory per export used to follow
  the events' size.

Each phase runs on a freshly started server.

Prints one JSON document. Run it before and after a change on the same database::

    python -m bench.compat_bounds --events 1000000 --db bench/out/bounds-1m.db
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bench.export_memory import Sampler, free_port, mb, proc_kb, stop_server  # noqa: E402
from bench.gen import bench_events  # noqa: E402

DAY_US = 86_400 * 1_000_000


def start_server(db: Path, port: int) -> subprocess.Popen[bytes]:
    """``auditstream serve`` on ``db``; a large database takes a while to open."""
    cmd = [sys.executable, "-m", "auditstream", "serve", "--db", str(db), "--port", str(port),
           "--no-demo"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    started = time.monotonic()
    while time.monotonic() < started + 600:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                print(f"server up in {time.monotonic() - started:.1f} s", file=sys.stderr)
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError("server exited")
    proc.kill()
    raise RuntimeError("server did not start")


def build(db: Path, events: int, now_us: int) -> None:
    """``events`` bench events into ``db`` through the ingest pipeline (1000 per request)."""
    from auditstream.app import build_services
    from auditstream.auth.principal import Principal
    from auditstream.settings import Settings

    async def run() -> None:
        svc = build_services(Settings(db=str(db), demo=False, synchronous="normal"))
        bodies: dict[str, list[dict[str, Any]]] = {}
        started = time.perf_counter()
        done = 0

        async def flush(tenant: str) -> None:
            nonlocal done
            if not svc.catalog.tenant_exists(tenant):
                svc.catalog.create_tenant(tenant)
            principal = Principal(tenant, frozenset({"events:write"}), "api_key", "bench")
            batch = bodies.pop(tenant)
            await svc.ingest(principal, orjson.dumps(batch), "application/json")
            done += len(batch)
            if done % 100_000 < len(batch):
                rate = done / (time.perf_counter() - started)
                print(f"built {done} events ({rate:.0f}/s)", file=sys.stderr)

        for tenant, event in bench_events(events, now_us=now_us):
            bodies.setdefault(tenant, []).append(event)
            if len(bodies[tenant]) >= 1000:
                await flush(tenant)
        for tenant in list(bodies):
            await flush(tenant)
        await svc.store.close()
        svc.catalog.close()

    asyncio.run(run())


def timed(client: httpx.Client, url: str, params: dict[str, Any]) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    r = client.get(url, params=params)
    return time.perf_counter() - started, r.status_code, r.content[:300]


def deep_pages(base: str, key: str, other_key: str, now_us: int, days: int) -> dict[str, Any]:
    """Pages 1, 50 (the deepest at 200 per page that ``MAX_DEPTH`` = 10,000 allows) and
    total/200 (the last), alone; then pages 50 and total/200 four at a time while another
    tenant reads small native pages."""
    from auditstream.model.times import format_us

    url = "/compat/turqoa/v1/events"
    window = {"sort": "severity", "per_page": 200,
              "start_date": format_us(now_us - days * DAY_US), "end_date": format_us(now_us)}
    out: dict[str, Any] = {}
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=900) as c:
        total = c.get(url, params=window).json()["pagination"]["total_items"]
        out["total_items"] = total
        last = max(1, total // 200)
        for page in (1, 50, last):
            secs, status, body = timed(c, url, {**window, "page": page})
            out[f"page_{page}"] = {"seconds": round(secs, 3), "status": status}
    with httpx.Client(base_url=base, headers={"X-API-Key": other_key}, timeout=900) as o:
        idle = sorted(timed(o, "/v1/events", {"limit": 50})[0] for _ in range(20))
    out["other_tenant_idle_p50_ms"] = round(idle[len(idle) // 2] * 1000, 1)
    for page in dict.fromkeys((50, last)):
        out[f"page_{page}_x4"] = four_at_once(base, key, other_key, url,
                                              {**window, "page": page})
    return out


def four_at_once(base: str, key: str, other_key: str, url: str,
                 params: dict[str, Any]) -> dict[str, Any]:
    probe: list[float] = []
    halt = threading.Event()

    def other() -> None:
        with httpx.Client(base_url=base, headers={"X-API-Key": other_key}, timeout=900) as o:
            while not halt.is_set():
                probe.append(timed(o, "/v1/events", {"limit": 50})[0])

    def one() -> tuple[float, int, bytes]:
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=900) as c:
            return timed(c, url, params)

    t = threading.Thread(target=other, daemon=True)
    t.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: one(), range(4)))
    wall = time.perf_counter() - started
    halt.set()
    t.join()
    probe.sort()
    return {
        "wall_seconds": round(wall, 3),
        "each_seconds": [round(r[0], 3) for r in results],
        "statuses": [r[1] for r in results],
        "other_tenant_page_ms": {
            "p50": round(probe[len(probe) // 2] * 1000, 1) if probe else None,
            "max": round(probe[-1] * 1000, 1) if probe else None,
            "samples": len(probe),
        },
    }


def exports(base: str, key: str, pid: int, parallel: int, params: dict[str, Any]
            ) -> dict[str, Any]:
    def one() -> dict[str, Any]:
        size = 0
        started = time.perf_counter()
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=600) as c, \
                c.stream("GET", "/v1/events/export", params=params) as r:
            status = r.status_code
            for chunk in r.iter_raw(1 << 20):
                size += len(chunk)
            retry = r.headers.get("retry-after")
        return {"status": status, "bytes": size,
                "seconds": round(time.perf_counter() - started, 2), "retry_after": retry}

    out: dict[str, Any] = {}
    for label, n in (("one", 1), (f"parallel_{parallel}", parallel)):
        before = proc_kb(pid, "VmRSS")
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # VmHWM := current RSS, so it reads this phase's peak
        sampler = Sampler(pid)
        sampler.start()
        started = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            runs = list(pool.map(lambda _: one(), range(n)))
        wall = time.perf_counter() - started
        rss = [kb for _, kb in sampler.stop()]
        out[label] = {
            "rss_before_mb": mb(before),
            "rss_peak_mb": mb(max(proc_kb(pid, "VmHWM"), *rss)),
            "rss_after_mb": mb(proc_kb(pid, "VmRSS")),
            "wall_seconds": round(wall, 2),
            "runs": runs,
        }
    return out


def build_big(db: Path, events: int, kb: int) -> None:
    """A tenant ``big`` of ``events`` events of about ``kb`` KB each (a long payload)."""
    from auditstream.app import build_services
    from auditstream.auth.principal import Principal
    from auditstream.settings import Settings

    async def run() -> None:
        svc = build_services(Settings(db=str(db), demo=False, synchronous="normal"))
        svc.catalog.create_tenant("big")
        principal = Principal("big", frozenset({"events:write"}), "api_key", "bench")
        lines = ["x" * 100 + str(i) for i in range(kb * 10)]
        for start in range(0, events, 50):
            body = [{"type": "bulk.report", "title": f"report {i}",
                     "payload": {"lines": lines, "i": i}} for i in range(start, start + 50)]
            await svc.ingest(principal, orjson.dumps(body), "application/json")
        await svc.store.close()
        svc.catalog.close()

    asyncio.run(run())


def serve(db: Path, tenant: str) -> tuple[subprocess.Popen[bytes], str, str]:
    from auditstream.auth.catalog import Catalog

    catalog = Catalog(str(db))
    key = catalog.create_key(tenant, ["events:read"]).secret or ""
    catalog.close()
    port = free_port()
    return start_server(db, port), f"http://127.0.0.1:{port}", key


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--db", default="bench/out/bounds.db")
    ap.add_argument("--parallel-exports", type=int, default=5)
    ap.add_argument("--days", type=int, default=31, help="turqoa start_date this far back")
    ap.add_argument("--big-events", type=int, default=3000,
                    help="events of the heavy-event export database (0: skip)")
    ap.add_argument("--big-kb", type=int, default=100, help="size of each heavy event, KB")
    ap.add_argument("--skip", default="", help="comma list: deep_page, exports, big")
    args = ap.parse_args()

    db = Path(args.db)
    db.parent.mkdir(parents=True, exist_ok=True)
    stamp = db.with_suffix(".now")
    if not db.exists():
        now = time.time_ns() // 1000
        build(db, args.events, now)
        stamp.write_text(str(now))
    now = int(stamp.read_text())
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    result: dict[str, Any] = {"events": args.events, "commit": commit}
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    # Every phase on a freshly started server, so none inherits another's memory.
    if "deep_page" not in skip:
        proc, base, key = serve(db, "t000")
        try:
            from auditstream.auth.catalog import Catalog

            catalog = Catalog(str(db))
            other = catalog.create_key("t001", ["events:read"]).secret or ""
            catalog.close()
            result["rss_idle_mb"] = mb(proc_kb(proc.pid, "VmRSS"))
            result["deep_page"] = deep_pages(base, key, other, now, args.days)
        finally:
            stop_server(proc)
    if "exports" not in skip:
        proc, base, key = serve(db, "t000")
        try:
            result["exports_t000_csv"] = exports(base, key, proc.pid, args.parallel_exports,
                                                 {"format": "csv"})
        finally:
            stop_server(proc)
    if "big" not in skip and args.big_events:
        big = db.with_name(db.stem + f"-big{args.big_events}x{args.big_kb}kb.db")
        if not big.exists():
            build_big(big, args.big_events, args.big_kb)
        proc, base, key = serve(big, "big")
        try:
            result["exports_big_csv"] = exports(base, key, proc.pid, args.parallel_exports,
                                                {"format": "csv"})
        finally:
            stop_server(proc)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
