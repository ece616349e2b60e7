"""Server memory while streaming a large export: is it constant in the export's size?

Starts ``python -m auditstream serve`` on a fresh database, ingests ``--events`` events
over HTTP in 1000-event batches (``bench.gen.bench_events``, all in one tenant), then
streams ``GET /v1/events/export`` in each ``--formats`` while sampling the server's
``VmRSS`` from ``/proc/<pid>/status``. Before each export the kernel's peak-RSS counter
is reset (``/proc/<pid>/clear_refs`` ← 5), so ``VmHWM`` after it is the exact peak of that
export, not just the highest sample. A ``--control`` export of the first N events runs
first: if memory is constant, its peak matches the full export's.

Prints one JSON document: ``events``, ``rss_before_mb``, ``rss_peak_mb``, ``export_bytes``,
``seconds`` of the first full export, and the same figures for every export under
``exports``.

    python bench/export_memory.py --events 1000000 --formats ndjson,csv,parquet
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from bench.gen import bench_events  # noqa: E402

# Used only when the running app.py does not serve /v1/events/export yet: the same
# server as ``auditstream serve``, with the export router registered first.
_WRAPPER = """
import sys, uvicorn
from auditstream.app import create_app
from auditstream.api.native import export
from auditstream.settings import Settings
app = create_app(Settings.from_env(db=sys.argv[1], port=int(sys.argv[2]), demo=False))
n = len(app.router.routes)
app.include_router(export.router)
added = app.router.routes[n:]
del app.router.routes[n:]
app.router.routes[:0] = added
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
            loop="uvloop", http="httptools", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def mb(kb: int) -> float:
    return round(kb / 1024, 1)


class Sampler(threading.Thread):
    """Samples the server's VmRSS every ``every`` seconds until stopped."""

    def __init__(self, pid: int, every: float = 0.02):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        #: Bytes of the export received so far, updated by the reader.
        self.progress = 0
        self.samples: list[tuple[int, int]] = []  # (bytes received, VmRSS kB)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((self.progress, proc_kb(self.pid, "VmRSS")))
            self._halt.wait(self.every)

    def stop(self) -> list[tuple[int, int]]:
        self._halt.set()
        self.join()
        return self.samples


def by_progress(samples: list[tuple[int, int]], total: int) -> dict[str, float]:
    """Highest RSS seen by each tenth of the export: flat when memory is constant."""
    out = {}
    for tenth in range(1, 11):
        upto = [rss for done, rss in samples if done <= total * tenth / 10]
        if upto:
            out[f"{tenth * 10}%"] = mb(max(upto))
    return out


def start_server(db: Path, port: int, wrapper: bool) -> subprocess.Popen[bytes]:
    if wrapper:
        cmd = [sys.executable, "-c", _WRAPPER, str(db), str(port)]
    else:
        cmd = [sys.executable, "-m", "auditstream", "serve", "--db", str(db),
               "--port", str(port), "--no-demo"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def ingest(client: httpx.Client, n: int, parallel: int) -> float:
    """POST ``n`` events in 1000-event batches, ``parallel`` requests in flight (so the
    server's group commit can share one fsync between them)."""
    from concurrent.futures import ThreadPoolExecutor

    started = time.perf_counter()
    body: list[dict[str, Any]] = []
    inflight: list[Any] = []
    with ThreadPoolExecutor(parallel) as pool:
        for _tenant, event in bench_events(n, tenants=1):
            body.append(event)
            if len(body) == 1000:
                inflight.append(pool.submit(_post, client, orjson.dumps(body)))
                body = []
                if len(inflight) >= parallel * 2:
                    inflight.pop(0).result()
        if body:
            inflight.append(pool.submit(_post, client, orjson.dumps(body)))
        for f in inflight:
            f.result()
    return time.perf_counter() - started


def _post(client: httpx.Client, body: bytes) -> None:
    r = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    r.raise_for_status()


def export(client: httpx.Client, pid: int, fmt: str, limit: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {"format": fmt}
    if limit is not None:
        params["limit"] = limit
    before = proc_kb(pid, "VmRSS")
    reset = True
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        reset = False
    sampler = Sampler(pid)
    sampler.start()
    started = time.perf_counter()
    size = lines = 0
    with client.stream("GET", "/v1/events/export", params=params) as r:
        r.raise_for_status()
        for chunk in r.iter_raw(1 << 20):
            size += len(chunk)
            sampler.progress = size
            if fmt == "ndjson":
                lines += chunk.count(b"\n")
    seconds = time.perf_counter() - started
    samples = sampler.stop()
    rss = [kb for _, kb in samples]
    hwm = proc_kb(pid, "VmHWM") if reset else max(rss)
    out: dict[str, Any] = {
        "format": fmt, "limit": limit,
        "rss_before_mb": mb(before), "rss_peak_mb": mb(max(hwm, *rss)),
        "rss_sampled_peak_mb": mb(max(rss)), "rss_after_mb": mb(proc_kb(pid, "VmRSS")),
        "export_bytes": size, "seconds": round(seconds, 2),
        "mb_per_s": round(size / 1048576 / seconds, 1),
        "rss_by_progress_mb": by_progress(samples, size),
    }
    if fmt == "ndjson":
        out["lines"] = lines
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--formats", default="ndjson,csv,parquet")
    ap.add_argument("--control", type=int, default=100_000,
                    help="first export only this many events (0: skip)")
    ap.add_argument("--parallel", type=int, default=2, help="ingest requests in flight")
    ap.add_argument("--dir", help="directory for the database (default: a temp dir)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        db = Path(tmp) / "bench.db"
        from auditstream.auth.catalog import Catalog

        catalog = Catalog(str(db))
        catalog.create_tenant("bench")
        secret = catalog.create_key("bench", ["events:read", "events:write"]).secret
        catalog.close()
        port = free_port()
        launcher = "serve"
        proc = start_server(db, port, wrapper=False)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}",
                              headers={"X-API-Key": secret or ""}, timeout=600)
        try:
            probe = client.get("/v1/events/export", params={"limit": 1})
            if probe.status_code == 404:  # app.py does not register the export router yet
                stop_server(proc)
                launcher = "wrapper"
                proc = start_server(db, port, wrapper=True)
            ingest_s = ingest(client, args.events, args.parallel)
            rss_ingest = proc_kb(proc.pid, "VmRSS")
            runs = []
            fmts = [f.strip() for f in args.formats.split(",") if f.strip()]
            if args.control:
                runs.append(export(client, proc.pid, fmts[0], args.control))
            for fmt in fmts:
                runs.append(export(client, proc.pid, fmt, None))
        finally:
            client.close()
            stop_server(proc)
        full = next(r for r in runs if r["limit"] is None)
        print(orjson.dumps({
            "events": args.events, "launcher": launcher,
            "ingest_seconds": round(ingest_s, 1),
            "ingest_events_per_s": round(args.events / ingest_s),
            "rss_after_ingest_mb": mb(rss_ingest),
            "db_mb": round(sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1048576),
            "rss_before_mb": full["rss_before_mb"], "rss_peak_mb": full["rss_peak_mb"],
            "export_bytes": full["export_bytes"], "seconds": full["seconds"],
            "exports": runs,
        }).decode())


if __name__ == "__main__":
    main()
