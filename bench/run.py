"""End-to-end benchmark of a real auditstream server: ingest, group commit, queries, memory.

    python -m bench.run --events N [--workers 1,2,3] [--repeat R] [--out FILE]
                        [--backend sqlite|clickhouse]
    (make bench: N = 1,000,000, workers 1 and the default of ``serve``)

``--backend clickhouse`` measures the ClickHouse index (embedded chdb in the work
directory, one server process) after the SQLite backend on the same workload, so every
ClickHouse figure has its SQLite baseline from the same run.

What it does, in order (progress on stderr, ONE JSON document on stdout and in --out, and
the summary table beside it as ``.md``):

1. generate N events with ``bench/gen.py`` and pre-serialise them (orjson) into
   1,000-event request bodies, one tenant per body, spooled to a file in the work dir;
   plus single-event bodies for the group-commit phase. Nothing of this is timed.
2. create the tenants and one key per tenant with the ``auditstream`` CLI commands
   (``tenants create``, ``keys create --json``), run in-process in one subprocess so 400
   commands do not pay 400 interpreter start-ups. Every run starts from a copy of this
   file.

Then, ``--repeat`` times, for each worker count of ``--workers`` in turn (interleaved, so
the machine's load falls on every count alike), one run:

3. the raw-SQLite ceiling (``bench/raw_sqlite.py``): the same rows, the same schema
   (``schema.migrate`` on a fresh file), executemany in 10,000-row transactions.
4. start ``python -m auditstream serve --db <copy> --port <free> --no-demo --workers W``
   as a subprocess (environment passed through: ``AUDITSTREAM_SYNCHRONOUS`` as the user
   has it, default ``full``), wait until its whole process tree is up and idle, and sample
   the tree's total RSS every 100 ms (``bench/proctree.py``; CPU is summed over the tree
   too).
5. batch ingest over HTTP: several concurrent keep-alive clients POST the bodies.
6. an HTTP floor: ``GET /healthz`` from 32 clients (no auth, no database).
7. single-event POSTs from 32 concurrent clients for ``--single-seconds``.
8. queries at N stored events, each kind alone: a filtered page (tenant + 2 filters + time
   range, limit 50, following ``next_cursor`` 0-9 pages) at 1, 4 and 32 clients;
   full-text search (``q=`` bare words) and the hourly ``group_by=type`` aggregate over 30
   days of the largest tenant at 1 and 32 clients.
9. the HTTP floor again (its mean with 6. is the baseline of the ratios to ``/healthz``).
10. stop the server; replay the same queries in-process on the store (opened read-only,
    no HTTP) for the engine-only baseline, and run the SQL the aggregate ran (recorded
    with SQLite's trace hook) alone on the file.

``bench/figures.py`` turns each run into the issue's figures and the runs into a summary
per worker count (median, range, spread).

The client is a minimal HTTP/1.1 keep-alive client on asyncio + uvloop (not httpx): it
shares the machine's cores with the server, so it must cost as little as possible. Its own
CPU time and the server's are reported per phase so the share can be seen.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import mmap
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from auditstream.dbapi import sqlite3

from . import raw_sqlite
from .figures import markdown, run_figures, summarise
from .gen import bench_events
from .proctree import ProcessTree

ROOT = Path(__file__).resolve().parent.parent
US = 1_000_000
DAY_US = 86_400 * US
BATCH = 1000

#: Filtered-page templates: 2 equality filters each (the tenant and a time range are added).
PAGE_TEMPLATES: tuple[tuple[tuple[str, str], ...], ...] = (
    (("type", "login"), ("outcome", "failure")),
    (("type", "install"), ("subject.ecosystem", "npm")),
    (("outcome", "block"), ("subject.ecosystem", "pip")),
    (("type", "audit"), ("outcome", "review")),
    (("type", "session.created"), ("outcome", "success")),
    (("type", "llm.call"), ("outcome", "success")),
)
#: Full-text queries (bare words, ANDed): rare and common terms and phrases.
FTS_TERMS = (
    "typosquat", "Nordic Star", "brute force", "Gate 3", "verification failed",
    "night shift", "login", "session", "container", "invalid code", "out of memory",
    "anomaly model", "escalated", "vault terminal",
)

_CLI_BATCH = r"""
import contextlib, io, json, sys
from auditstream.cli import app
out = []
for argv in json.load(sys.stdin):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            app(argv, standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                raise
    out.append(buf.getvalue())
sys.__stdout__.write(json.dumps(out))
"""


def log(msg: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of unsorted ``values``."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(-(-q * len(s) // 1)) - 1))]


def ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 2)


def lat_summary(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50_ms": ms(pct(values, 0.50)), "p90_ms": ms(pct(values, 0.90)),
            "p99_ms": ms(pct(values, 0.99)), "max_ms": ms(max(values) if values else None)}


# ---- the server process ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def python_bin() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


class Server:
    """``auditstream serve --workers N`` as a subprocess; its figures cover the whole tree."""

    def __init__(self, db: Path, port: int, logfile: Path, switch_interval: float | None = None,
                 workers: int = 1, env: dict[str, str] | None = None):
        self.db, self.port, self.logfile = db, port, logfile
        self.env = env or {}
        self.switch_interval = switch_interval
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, **self.env)
        env["PYTHONUNBUFFERED"] = "1"
        self._log = open(self.logfile, "wb")  # noqa: SIM115 - closed in stop()
        cmd = ["serve", "--db", str(self.db), "--port", str(self.port), "--no-demo",
               "--workers", str(self.workers)]
        if self.switch_interval is None:
            argv = [python_bin(), "-m", "auditstream", *cmd]
        else:  # experiment only: the same CLI entry point with another GIL switch interval
            argv = [python_bin(), "-c",
                    f"import sys; sys.setswitchinterval({self.switch_interval!r}); "
                    f"sys.argv = ['auditstream', *{cmd!r}]; "
                    "from auditstream.cli import main; main()"]
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.tree = ProcessTree(self.proc.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                    # N > 1: one worker answering is not all N listening; wait for the
                    # tree to be complete (server, resource tracker, writer, N workers).
                    if b" 200 " in s.recv(1024) and (
                            self.workers == 1 or len(self.tree.pids()) >= self.workers + 3):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become ready in 60 s:\n" + self.tail())

    def wait_idle(self, timeout: float = 20.0, window: float = 0.5) -> None:
        """Until the tree uses almost no CPU for ``window`` seconds: every worker has
        finished importing and starting its app, so the figures do not include start-up."""
        deadline = time.monotonic() + timeout
        before = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(window)
            now = self.cpu_seconds()
            if now - before < 0.05 * window:
                return
            before = now

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def tail(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        """utime + stime of every process of the server (all their threads)."""
        return self.tree.cpu_seconds()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            pids = self.tree.pids()
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            for pid in pids[1:]:  # a process the supervisor failed to stop, by its pid
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        self._log.close()
        return self.proc.returncode


class RssSampler(threading.Thread):
    """Total RSS of the server's process tree every ``interval`` seconds (and its PSS every
    ``pss_every`` samples: reading ``smaps_rollup`` costs more); max per phase on demand."""

    def __init__(self, server: Server, interval: float = 0.1, pss_every: int = 10):
        super().__init__(daemon=True, name="rss-sampler")
        self.server, self.interval, self.pss_every = server, interval, pss_every
        self.samples: list[tuple[float, int]] = []
        self.pss: list[tuple[float, int]] = []
        self.per_pid_max_kb: dict[int, int] = {}
        self.max_pids = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        tree = self.server.tree
        n = 0
        while not self.stopping.is_set():
            s = tree.sample()
            if s.pids:
                now = time.monotonic()
                self.samples.append((now, s.rss_kb))
                self.max_pids = max(self.max_pids, s.pids)
                for pid, kb in s.per_pid_rss_kb.items():
                    self.per_pid_max_kb[pid] = max(kb, self.per_pid_max_kb.get(pid, 0))
                if n % self.pss_every == 0:
                    self.pss.append((now, tree.pss_kb()))
            n += 1
            self.stopping.wait(self.interval)

    def max_mb(self, since: float = 0.0, until: float = float("inf")) -> float | None:
        vals = [kb for t, kb in self.samples if since <= t <= until]
        return round(max(vals) / 1024, 1) if vals else None

    def max_pss_mb(self) -> float | None:
        return round(max(kb for _, kb in self.pss) / 1024, 1) if self.pss else None


def scrape_metrics(port: int) -> dict[str, float]:
    """The few Prometheus counters the report uses (commits, requests per commit)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    text = b"".join(chunks).split(b"\r\n\r\n", 1)[1].decode(errors="replace")
    out: dict[str, float] = {}
    for name in ("auditstream_store_commits_total", "auditstream_store_commit_requests_sum",
                 "auditstream_store_commit_requests_count", "auditstream_events_ingested_total"):
        m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
        if m:
            out[name] = float(m.group(1))
    return out


# ---- a minimal HTTP/1.1 keep-alive client ------------------------------------------------


class Conn:
    """One keep-alive connection; ``send`` takes a complete request, returns (status, body)."""

    def __init__(self, port: int):
        self.port = port

    async def open(self) -> Conn:
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.port, limit=1 << 24)
        return self

    async def send(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        if len(request) > 1 << 16:
            await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            k = k.strip().lower()
            if k == b"content-length":
                length = int(v)
            elif k == b"transfer-encoding" and b"chunked" in v.lower():
                chunked = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            return status, b"".join(parts)
        return status, (await self.reader.readexactly(length) if length else b"")

    def close(self) -> None:
        self.writer.close()


class Http:
    def __init__(self, port: int):
        self.port = port
        self.host = f"127.0.0.1:{port}".encode()

    def get(self, path: str, key: str | None) -> bytes:
        auth = f"x-api-key: {key}\r\n" if key else ""
        return f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{auth}\r\n".encode()

    def post_head(self, key: str) -> bytes:
        return (f"POST /v1/events HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: {key}\r\n"
                "content-type: application/json\r\ncontent-length: ").encode()

    async def connections(self, n: int) -> list[Conn]:
        return list(await asyncio.gather(*(Conn(self.port).open() for _ in range(n))))


def cpu_pressure_us() -> int | None:
    """PSI ``some`` total: µs during which at least one runnable task waited for a CPU."""
    try:
        with open("/proc/pressure/cpu") as f:
            return int(f.readline().rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return None


class Profiler:
    """Optional ``py-spy record`` of the server, one collapsed-stack file per phase."""

    def __init__(self, directory: str | None, pid: int):
        self.dir = Path(directory) if directory else None
        self.pid = pid
        self.proc: subprocess.Popen[bytes] | None = None
        if self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str) -> None:
        if self.dir is None:
            return
        spy = shutil.which("py-spy") or str(ROOT / ".venv" / "bin" / "py-spy")
        self.proc = subprocess.Popen(
            [spy, "record", "--pid", str(self.pid), "--format", "raw", "--rate", "100",
             "--threads", "--subprocesses",
             *(["--idle"] if os.environ.get("BENCH_PROFILE_IDLE") else []),
             *(["--native"] if os.environ.get("BENCH_PROFILE_NATIVE") else []),
             "--nonblocking", "--output", str(self.dir / f"{name}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=60)
            self.proc = None


class Phase:
    """Wall time, server CPU, client CPU and server RSS over one measured stretch."""

    profiler: Profiler | None = None

    def __init__(self, server: Server, rss: RssSampler, name: str = ""):
        self.server, self.rss, self.name = server, rss, name

    def __enter__(self) -> Phase:
        if self.profiler is not None and self.name:
            self.profiler.start(self.name)
        self.psi0 = cpu_pressure_us()
        self.t0 = time.monotonic()
        self.wall0 = time.perf_counter()
        self.scpu0_by_pid = self.server.tree.cpu_by_pid()
        self.ccpu0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        by_pid = self.server.tree.cpu_by_pid()
        self.server_cpu = sum(by_pid.values()) - sum(self.scpu0_by_pid.values())
        # Per role (writer, workers …): which process is the bottleneck.
        self.cpu_by_role: dict[str, float] = {}
        for pid, role in self.server.tree.roles().items():
            used = by_pid.get(pid, 0.0) - self.scpu0_by_pid.get(pid, 0.0)
            self.cpu_by_role[role] = self.cpu_by_role.get(role, 0.0) + used
        self.client_cpu = time.process_time() - self.ccpu0
        self.rss_max_mb = self.rss.max_mb(self.t0, time.monotonic())
        psi1 = cpu_pressure_us()
        self.cpu_pressure = (None if psi1 is None or self.psi0 is None
                             else (psi1 - self.psi0) / 1e6 / self.wall)
        if self.profiler is not None and self.name:
            self.profiler.stop()

    def doc(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall, 2),
            "server_cpu_cores": round(self.server_cpu / self.wall, 2),
            "server_cpu_cores_by_role": {k: round(v / self.wall, 2)
                                         for k, v in sorted(self.cpu_by_role.items())},
            "client_cpu_cores": round(self.client_cpu / self.wall, 2),
            # Share of the time some task on the machine waited for a CPU (PSI): the noise
            # from other work sharing the 2 cores (and from this client).
            "machine_cpu_pressure": (None if self.cpu_pressure is None
                                     else round(self.cpu_pressure, 2)),
            "server_rss_max_mb": self.rss_max_mb,
        }


async def closed_loop(
    http: Http, clients: int, seconds: float,
    step: Callable[[Conn, random.Random, list[float]], Awaitable[None]], seed: int,
) -> tuple[list[float], float]:
    """``clients`` fresh keep-alive connections each run ``step`` back to back until the
    deadline (fresh, because uvicorn closes connections idle for more than 5 s)."""
    conns = await http.connections(clients)
    lat: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(i: int, conn: Conn) -> None:
        rng = random.Random(seed * 1000 + i)
        while time.perf_counter() < deadline:
            await step(conn, rng, lat)

    t0 = time.perf_counter()
    await asyncio.gather(*(client(i, c) for i, c in enumerate(conns)))
    wall = time.perf_counter() - t0
    for c in conns:
        c.close()
    return lat, wall


# ---- workload --------------------------------------------------------------------------


class Spool:
    """Request bodies on disk (so 10M events need no 6 GB of client memory), read by mmap."""

    def __init__(self, path: Path):
        self.path = path
        self.index: list[tuple[str, int, int, int]] = []  # tenant, offset, length, events
        self.counts: dict[str, int] = {}

    def write(self, n: int, seed: int, now: int, tenants: int) -> None:
        buffers: dict[str, list[dict[str, Any]]] = {}
        with open(self.path, "wb") as f:
            def put(tenant: str, events: list[dict[str, Any]]) -> None:
                body = orjson.dumps(events)
                self.index.append((tenant, f.tell(), len(body), len(events)))
                f.write(body)

            for tenant, ev in bench_events(n, seed=seed, now_us=now, tenants=tenants):
                self.counts[tenant] = self.counts.get(tenant, 0) + 1
                buf = buffers.get(tenant)
                if buf is None:
                    buf = buffers[tenant] = []
                buf.append(ev)
                if len(buf) >= BATCH:
                    put(tenant, buf)
                    buffers[tenant] = []
            for tenant, buf in sorted(buffers.items()):
                if buf:
                    put(tenant, buf)

    def __enter__(self) -> Spool:
        self._f = open(self.path, "rb")  # noqa: SIM115 - closed in __exit__
        self.mm = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ)
        return self

    def __exit__(self, *exc: object) -> None:
        self.mm.close()
        self._f.close()

def create_tenants(db: Path, tenants: list[str]) -> dict[str, str]:
    """``auditstream tenants create`` and ``keys create --json`` for each tenant."""
    argv: list[list[str]] = []
    for t in tenants:
        argv.append(["tenants", "create", t, "--db", str(db)])
        argv.append(["keys", "create", "--tenant", t, "--json", "--db", str(db)])
    proc = subprocess.run([python_bin(), "-c", _CLI_BATCH], input=json.dumps(argv).encode(),
                          capture_output=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError("CLI failed:\n" + proc.stderr.decode(errors="replace")[-3000:])
    outputs = json.loads(proc.stdout)
    keys = {}
    for t, out in zip(tenants, outputs[1::2], strict=True):
        keys[t] = json.loads(out.strip().splitlines()[-1])["key"]
    return keys


class Queries:
    """The query mix: filtered pages with cursors, full-text search, the big aggregate."""

    def __init__(self, counts: dict[str, int], now: int, days: int = 30):
        ranked = sorted(counts, key=lambda t: -counts[t])
        self.tenants = ranked[:20]
        self.largest = ranked[0]
        self.end_ms = now // 1000
        self.start_ms = (now - days * DAY_US) // 1000

    def page_params(self, rng: random.Random) -> tuple[str, list[tuple[str, str]], int]:
        """(tenant, params without cursor, extra pages to follow)."""
        tenant = rng.choice(self.tenants)
        span_ms = rng.choice((1, 7, 30)) * DAY_US // 1000
        since = rng.randrange(self.start_ms, max(self.start_ms + 1, self.end_ms - span_ms + 1))
        params = [*rng.choice(PAGE_TEMPLATES), ("since", str(since)),
                  ("until", str(since + span_ms)), ("limit", "50")]
        return tenant, params, rng.randrange(10)

    def fts_params(self, rng: random.Random) -> tuple[str, list[tuple[str, str]]]:
        return rng.choice(self.tenants), [("q", rng.choice(FTS_TERMS)), ("limit", "50")]

    def aggregate_params(self) -> tuple[str, list[tuple[str, str]]]:
        return self.largest, [("group_by", "type"), ("interval", "hour"),
                              ("since", str(self.start_ms))]


_NEXT = re.compile(rb'"next_cursor":"([^"]+)"')


# ---- phases ------------------------------------------------------------------------------


async def http_phases(args: argparse.Namespace, server: Server, rss: RssSampler,
                      spool: Spool, singles: list[bytes], keys: dict[str, str],
                      queries: Queries) -> dict[str, Any]:
    http = Http(server.port)
    out: dict[str, Any] = {}
    heads = {t: http.post_head(k) for t, k in keys.items()}

    # -- batch ingest -------------------------------------------------------------------
    log(f"batch ingest: {len(spool.index)} requests, {args.ingest_clients} clients")
    conns = await http.connections(args.ingest_clients)
    work = iter(spool.index)
    lat: list[float] = []
    full: list[float] = []
    errors: list[str] = []
    mm = spool.mm
    m0 = scrape_metrics(server.port)

    async def ingest_client(conn: Conn) -> None:
        for tenant, off, length, count in work:
            req = heads[tenant] + b"%d\r\n\r\n" % length + mm[off:off + length]
            t0 = time.perf_counter()
            status, body = await conn.send(req)
            dt = time.perf_counter() - t0
            lat.append(dt)
            if count == BATCH:
                full.append(dt)
            if status != 201 or not body.endswith(b'"count":%d}' % count):
                errors.append(f"{status} {body[:200]!r}")

    progress_done = asyncio.Event()

    async def progress() -> None:
        while not progress_done.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(progress_done.wait(), 15)
            if not progress_done.is_set():
                log(f"  {len(lat)}/{len(spool.index)} requests, "
                    f"RSS {rss.max_mb(time.monotonic() - 1)} MB")

    prog = asyncio.create_task(progress())
    with Phase(server, rss, "ingest_batch") as ph:
        await asyncio.gather(*(ingest_client(c) for c in conns))
    progress_done.set()
    await prog
    for c in conns:
        c.close()
    m1 = scrape_metrics(server.port)
    n_events = sum(x[3] for x in spool.index)
    if errors:
        raise RuntimeError(f"{len(errors)} ingest requests failed, first: {errors[0]}")
    out["ingest_batch"] = {
        "events": n_events, "requests": len(lat), "clients": args.ingest_clients,
        "events_per_s": round(n_events / ph.wall),
        "request_latency": lat_summary(lat),
        "request_latency_full_1000": lat_summary(full),
        **_commit_stats(m0, m1),
        **ph.doc(),
        "server_cpu_us_per_event": round(ph.server_cpu / n_events * 1e6, 1),
    }
    log(f"  {out['ingest_batch']['events_per_s']} events/s, "
        f"p99 {out['ingest_batch']['request_latency']['p99_ms']} ms")

    # -- HTTP floor: /healthz -------------------------------------------------------------
    async def healthz(conn: Conn, rng: random.Random, lat: list[float]) -> None:
        t0 = time.perf_counter()
        status, _ = await conn.send(hz)
        lat.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"/healthz {status}")

    hz = http.get("/healthz", None)
    with Phase(server, rss, "healthz") as ph:
        hlat, wall = await closed_loop(http, args.concurrency, args.floor_seconds, healthz, 7)
    out["healthz_32"] = {"requests_per_s": round(len(hlat) / wall), **lat_summary(hlat),
                         **ph.doc()}
    log(f"healthz x{args.concurrency}: {out['healthz_32']['requests_per_s']} req/s")

    # -- single-event POSTs ---------------------------------------------------------------
    log(f"single-event POSTs: {args.concurrency} clients, {args.single_seconds} s")
    pos = [0]
    serrors: list[str] = []

    async def single(conn: Conn, rng: random.Random, lat: list[float]) -> None:
        req = singles[pos[0] % len(singles)]
        pos[0] += 1
        t0 = time.perf_counter()
        status, body = await conn.send(req)
        lat.append(time.perf_counter() - t0)
        if status != 201:
            serrors.append(f"{status} {body[:200]!r}")

    m0 = scrape_metrics(server.port)
    with Phase(server, rss, "single_posts") as ph:
        slat, wall = await closed_loop(http, args.concurrency, args.single_seconds, single, 11)
    m1 = scrape_metrics(server.port)
    if serrors:
        raise RuntimeError(f"{len(serrors)} single POSTs failed, first: {serrors[0]}")
    out["single_event_posts"] = {
        "clients": args.concurrency, "events": len(slat),
        "events_per_s": round(len(slat) / wall), **lat_summary(slat),
        **_commit_stats(m0, m1), **ph.doc(),
        "server_cpu_us_per_event": round(ph.server_cpu / len(slat) * 1e6, 1),
    }
    log(f"  {out['single_event_posts']['events_per_s']} events/s")

    # -- queries --------------------------------------------------------------------------
    def url(params: list[tuple[str, str]]) -> str:
        return "/v1/events?" + urlencode(params, quote_via=quote)

    depth_lat: dict[str, list[float]] = {"page_1": [], "pages_2_5": [], "pages_6_10": []}
    empty = [0, 0]

    async def page_session(conn: Conn, rng: random.Random, lat: list[float]) -> None:
        tenant, params, extra = queries.page_params(rng)
        key = keys[tenant]
        base = url(params)
        path = base
        for depth in range(extra + 1):
            t0 = time.perf_counter()
            status, body = await conn.send(http.get(path, key))
            dt = time.perf_counter() - t0
            if status != 200:
                raise RuntimeError(f"page {status} {body[:300]!r}")
            lat.append(dt)
            depth_lat["page_1" if depth == 0 else
                      "pages_2_5" if depth < 5 else "pages_6_10"].append(dt)
            empty[0] += 1
            if body.startswith(b'{"data":[]'):
                empty[1] += 1
            m = _NEXT.search(body, max(0, len(body) - 400))
            if m is None:
                break
            path = base + "&cursor=" + m.group(1).decode()

    async def fts(conn: Conn, rng: random.Random, lat: list[float]) -> None:
        tenant, params = queries.fts_params(rng)
        t0 = time.perf_counter()
        status, body = await conn.send(http.get(url(params), keys[tenant]))
        lat.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"fts {status} {body[:300]!r}")

    agg_tenant, agg_params = queries.aggregate_params()
    agg_req = http.get("/v1/events/aggregate?" + urlencode(agg_params), keys[agg_tenant])
    agg_size = [0]

    async def aggregate(conn: Conn, rng: random.Random, lat: list[float]) -> None:
        t0 = time.perf_counter()
        status, body = await conn.send(agg_req)
        lat.append(time.perf_counter() - t0)
        agg_size[0] = len(body)
        if status != 200:
            raise RuntimeError(f"aggregate {status} {body[:300]!r}")

    c = args.concurrency
    for name, step, levels in (
        ("page", page_session, sorted({1, 4, c})),
        ("fts", fts, sorted({1, c})),
        ("aggregate", aggregate, sorted({1, c})),
    ):
        for clients in levels:
            for k in depth_lat.values():
                k.clear()
            empty[:] = [0, 0]
            seconds = args.query_seconds if clients == c else args.query_seconds / 3
            with Phase(server, rss, f"{name}_{clients}") as ph:
                lat, wall = await closed_loop(http, clients, seconds, step, 21 + clients)
            doc = {"clients": clients, "requests_per_s": round(len(lat) / wall, 1),
                   **lat_summary(lat), **ph.doc()}
            if name == "page":
                doc["by_depth"] = {k: lat_summary(v) for k, v in depth_lat.items()}
                doc["empty_page_share"] = round(empty[1] / max(1, empty[0]), 3)
            if name == "aggregate":
                doc["response_bytes"] = agg_size[0]
                doc["tenant"] = agg_tenant
                doc["tenant_events"] = spool.counts.get(queries.largest, 0)
            out[f"{name}_{clients}"] = doc
            log(f"{name}, {clients} clients: p50 {doc['p50_ms']} p99 {doc['p99_ms']} ms, "
                f"{doc['requests_per_s']} req/s")

    # -- the HTTP floor again: the machine is shared, so bracket the run with it ---------
    with Phase(server, rss, "healthz_after") as ph:
        hlat, wall = await closed_loop(http, args.concurrency, args.floor_seconds, healthz, 8)
    out["healthz_32_after"] = {"requests_per_s": round(len(hlat) / wall), **lat_summary(hlat),
                               **ph.doc()}
    log(f"healthz x{args.concurrency} after the queries: "
        f"{out['healthz_32_after']['requests_per_s']} req/s")
    return out


def _commit_stats(m0: dict[str, float], m1: dict[str, float]) -> dict[str, Any]:
    commits = m1.get("auditstream_store_commits_total", 0) - m0.get(
        "auditstream_store_commits_total", 0)
    reqs = m1.get("auditstream_store_commit_requests_sum", 0) - m0.get(
        "auditstream_store_commit_requests_sum", 0)
    return {"commits": int(commits),
            "requests_per_commit": round(reqs / commits, 2) if commits else None}


async def engine_baseline(db: Path, keys: dict[str, str], queries: Queries,
                          seconds: float, backend: dict[str, str] | None = None
                          ) -> dict[str, Any]:
    """The same query mix in-process on the store (no HTTP, no auth, 1 thread), opened
    read-only through the composition root, and the aggregate's SQL alone on the file."""
    from auditstream.app import build_store
    from auditstream.query.params import PAGE_PARAMS, filter_from_params
    from auditstream.settings import Settings
    from auditstream.store.base import AggregateSpec, EventQuery

    with SqlTrace() as trace:
        store = build_store(Settings.from_env(db=str(db), **(backend or {})), readonly=True)
    rng = random.Random(5)
    out: dict[str, Any] = {}
    psi0, wall0 = cpu_pressure_us(), time.perf_counter()
    try:
        # Warm the (fresh) connection's page cache as the server's were warm: 1 s of pages.
        deadline = time.perf_counter() + min(1.0, seconds)
        while time.perf_counter() < deadline:
            tenant, params, _ = queries.page_params(rng)
            await store.query(tenant, EventQuery(
                filter=filter_from_params(params, allowed=PAGE_PARAMS), limit=50))
        lat: list[float] = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            tenant, params, extra = queries.page_params(rng)
            cursor = None
            for _ in range(extra + 1):
                t0 = time.perf_counter()
                q = EventQuery(filter=filter_from_params(params, allowed=PAGE_PARAMS),
                               limit=50, cursor=cursor)
                page = await store.query(tenant, q)
                lat.append(time.perf_counter() - t0)
                cursor = page.next_cursor
                if cursor is None:
                    break
        out["page"] = lat_summary(lat)
        lat = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            tenant, params = queries.fts_params(rng)
            t0 = time.perf_counter()
            q = EventQuery(filter=filter_from_params(params, allowed=PAGE_PARAMS), limit=50)
            await store.query(tenant, q)
            lat.append(time.perf_counter() - t0)
        out["fts"] = lat_summary(lat)
        fts_terms: dict[str, float] = {}
        for term in FTS_TERMS:
            t0 = time.perf_counter()
            q = EventQuery(filter=filter_from_params([("q", term)], allowed=PAGE_PARAMS),
                           limit=50)
            await store.query(queries.largest, q)
            fts_terms[term] = round((time.perf_counter() - t0) * 1000, 1)
        out["fts_ms_by_term_largest_tenant"] = fts_terms
        lat = []
        tenant, params = queries.aggregate_params()
        where = filter_from_params(params, allowed=frozenset({"group_by", "interval"}))
        spec = AggregateSpec(group_by="type", interval="hour")
        with trace.recording():
            await store.aggregate(tenant, where, spec)
        for _ in range(7):
            t0 = time.perf_counter()
            await store.aggregate(tenant, where, spec)
            lat.append(time.perf_counter() - t0)
        out["aggregate"] = lat_summary(lat)
        if not backend:  # the SQL SQLite ran, alone on the file
            out["aggregate_sql_alone"] = sql_alone(db, trace.queries())
        out["export"] = await export_rate(store, queries.largest)
    finally:
        await store.close()
    psi1 = cpu_pressure_us()
    if psi0 is not None and psi1 is not None:
        out["machine_cpu_pressure"] = round((psi1 - psi0) / 1e6 / (time.perf_counter() - wall0), 2)
    return out


async def export_rate(store: Any, tenant: str) -> dict[str, Any]:
    """Every event of the largest tenant through ``scan`` (what exports read), parsed."""
    from auditstream.query.filter import All

    n = 0
    t0 = time.perf_counter()
    async for batch in store.scan(tenant, All(), batch=5000):
        n += len(batch)
    s = time.perf_counter() - t0
    return {"events": n, "seconds": round(s, 3), "events_per_s": round(n / s) if s else None}


def backend_settings(backend: str, work: Path, name: str) -> dict[str, str]:
    """The settings (``Settings`` fields) that put a run's index on ``backend``."""
    if backend == "sqlite":
        return {}
    return {"backend": backend, "clickhouse_url": f"chdb://{work / (name + '.chdb')}"}


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() \
        else 0


class SqlTrace:
    """Records the SQL (with its parameters bound) that connections opened inside the
    ``with`` block run while ``recording()``: whatever path the store takes to an answer
    (rollups, caches of closed hours, a plain GROUP BY), its SQL can then be run alone."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self._on = False

    def __enter__(self) -> SqlTrace:
        self._connect = sqlite3.connect

        def connect(*args: Any, **kwargs: Any) -> Any:
            conn = self._connect(*args, **kwargs)
            conn.set_trace_callback(self._trace)
            return conn

        sqlite3.connect = connect
        return self

    def __exit__(self, *exc: object) -> None:
        sqlite3.connect = self._connect

    def _trace(self, sql: str) -> None:
        if self._on:
            self.statements.append(sql)

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        self.statements.clear()
        self._on = True
        try:
            yield
        finally:
            self._on = False

    def queries(self) -> list[str]:
        """The reads recorded (not the readers' planner-statistics checks)."""
        return [q for q in self.statements
                if q.lstrip().upper().startswith(("SELECT", "WITH"))
                and "sqlite_stat1" not in q]


def sql_alone(db: Path, statements: list[str], runs: int = 7) -> dict[str, Any]:
    """Each statement executed and fetched on a fresh read-only connection to the file
    (the server's connection settings), once to warm it, then ``runs`` times."""
    from auditstream.store.sqlite.schema import connect

    conn = connect(str(db), readonly=True)
    lat: list[float] = []
    rows = 0
    try:
        for i in range(runs + 1):
            t0 = time.perf_counter()
            rows = sum(len(conn.execute(q).fetchall()) for q in statements)
            if i:
                lat.append(time.perf_counter() - t0)
    finally:
        conn.close()
    return {"statements": len(statements), "rows": rows, **lat_summary(lat),
            "sql": [q[:2000] for q in statements]}


# ---- the report ----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "mem_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
        "loadavg_at_start": os.getloadavg(),
        "auditstream_env": {k: v for k, v in os.environ.items() if k.startswith("AUDITSTREAM_")},
    }


def source_digest() -> dict[str, Any]:
    """Which engine was measured: a digest of src/auditstream/**/*.py and its newest mtime
    (the code changes between runs; compare figures only between equal digests)."""
    import hashlib

    h = hashlib.sha256()
    newest = 0.0
    for f in sorted((ROOT / "src" / "auditstream").rglob("*.py")):
        h.update(str(f.relative_to(ROOT)).encode())
        h.update(f.read_bytes())
        newest = max(newest, f.stat().st_mtime)
    return {"sha256_12": h.hexdigest()[:12],
            "newest_mtime": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(newest))}


def server_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the server will run with (defaults + AUDITSTREAM_* from the env)."""
    from auditstream.settings import Settings

    st = Settings.from_env()
    doc: dict[str, Any] = {"synchronous": st.synchronous, "read_pool": st.read_pool,
                           "workers_default": st.workers,
                           "indexed_paths": len(st.indexed_path_list),
                           "integrity": getattr(st, "integrity", None)}
    if args.server_switch_interval is not None:
        doc["EXPERIMENT_switch_interval"] = args.server_switch_interval
    return doc


def parse_workers(text: str) -> list[int]:
    """``1,2,3``; ``default`` is the worker count ``serve`` would use (the setting
    ``AUDITSTREAM_WORKERS`` or its default). Repeats are dropped, the order is kept."""
    from auditstream.settings import Settings

    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        n = Settings.from_env().workers if part == "default" else int(part)
        if n < 1:
            raise argparse.ArgumentTypeError(f"worker counts are at least 1, got {n}")
        if n not in out:
            out.append(n)
    if not out:
        raise argparse.ArgumentTypeError("no worker count")
    return out


def copy_db(template: Path, dest: Path) -> None:
    """The database with the tenants and keys (and whatever the CLI keeps beside it: the
    signing key, the JWT secret), under a new name."""
    for f in template.parent.glob(template.name + "*"):
        if f.is_file() and not f.name.endswith(".lock"):
            shutil.copy2(f, dest.parent / (dest.name + f.name[len(template.name):]))


def remove_db(db: Path) -> None:
    for f in db.parent.glob(db.name + "*"):
        with contextlib.suppress(OSError):
            f.unlink()


def run_config(args: argparse.Namespace, workers: int, repeat: int, work: Path,
               template: Path, spool: Spool, singles: list[bytes], keys: dict[str, str],
               queries: Queries, backend: str = "sqlite") -> dict[str, Any]:
    """One server with ``workers`` on a fresh copy of the database, and the baselines of
    the same run: the raw-SQLite ceiling just before it, the engine in-process after."""
    run: dict[str, Any] = {"workers": workers, "repeat": repeat, "backend": backend,
                           "loadavg_at_start": os.getloadavg()}
    t_start = time.perf_counter()
    name = f"bench-{backend}-w{workers}-r{repeat}"
    db = work / f"{name}.db"
    copy_db(template, db)
    settings = backend_settings(backend, work, name)
    if backend == "clickhouse" and args.drop_bodies:
        settings["drop_indexed_bodies"] = "true"
        run["drop_indexed_bodies"] = True
    env = {"AUDITSTREAM_" + k.upper(): v for k, v in settings.items()}

    # the raw-SQLite ceiling
    raw_n = args.raw_events or args.events
    log(f"[workers {workers}, run {repeat + 1}] raw-SQLite ceiling on {raw_n} events")

    def raw_batches() -> Iterator[tuple[str, bytes]]:
        n = 0
        for tenant, off, length, count in spool.index:
            if n >= raw_n:
                return
            n += count
            yield tenant, spool.mm[off:off + length]

    raw_db = work / "raw.db"
    raw = raw_sqlite.run(str(raw_db), raw_batches())
    remove_db(raw_db)
    log(f"  {raw['insert_events_per_s']} events/s (inserts only), "
        f"{raw['insert_plus_build_events_per_s']} with row building")
    run["raw_sqlite"] = raw

    # the server
    server = Server(db, free_port(), work / f"server-{name}.log",
                    args.server_switch_interval, workers=workers, env=env)
    rss: RssSampler | None = None
    try:
        server.start()
        server.wait_idle()
        log(f"server pid {server.pid} on port {server.port}, "
            f"{len(server.tree.pids())} processes")
        rss = RssSampler(server)
        rss.start()
        time.sleep(1.0)
        idle_rss_mb = rss.max_mb()
        Phase.profiler = (Profiler(str(Path(args.profile) / f"w{workers}-r{repeat}"),
                                   server.pid) if args.profile else None)
        import uvloop

        run["http"] = uvloop.run(http_phases(args, server, rss, spool, singles, keys, queries))
        roles = server.tree.roles()
        run["server_rss"] = {
            "idle_after_start_mb": idle_rss_mb,
            "max_sampled_mb": rss.max_mb(),
            "pss_max_mb": rss.max_pss_mb(),
            "sum_of_vm_hwm_mb": round(server.tree.hwm_kb() / 1024, 1),
            "processes": rss.max_pids,
            "per_process_max_mb": sorted(
                ({"pid": pid, "role": roles.get(pid, "exited"), "max_mb": round(kb / 1024, 1)}
                 for pid, kb in rss.per_pid_max_kb.items()), key=lambda x: -x["max_mb"]),
        }
        rss.stopping.set()
        run["server_exit_code"] = server.stop()
    except BaseException:
        log("server log tail:\n" + server.tail())
        raise
    finally:
        if rss is not None:
            rss.stopping.set()
        server.stop()
    run["db_bytes"] = sum(os.path.getsize(str(db) + s) for s in ("", "-wal")
                          if os.path.exists(str(db) + s))
    stored = sum(spool.counts.values()) + int(
        run["http"].get("single_event_posts", {}).get("events", 0) or 0)
    if backend != "sqlite":
        run["clickhouse_bytes"] = tree_bytes(work / f"{name}.chdb")
    run["disk_bytes_per_event"] = round(
        (run["db_bytes"] + run.get("clickhouse_bytes", 0)) / max(1, stored), 1)

    # the engine-only baseline for the queries, and the aggregate's SQL alone
    log("engine baseline (in-process store, no HTTP)")
    run["engine_inprocess"] = asyncio.run(
        engine_baseline(db, keys, queries, args.query_seconds / 3, settings or None))
    if not args.keep:
        remove_db(db)
        shutil.rmtree(work / f"{name}.chdb", ignore_errors=True)
    run["figures"] = run_figures(run, args.concurrency)
    run["failed"] = sorted(k for k, v in run["figures"].items() if not v["pass"])
    run["seconds"] = round(time.perf_counter() - t_start, 1)
    run["loadavg_at_end"] = os.getloadavg()
    log(f"[workers {workers}, run {repeat + 1}] {run['seconds']} s; failed: "
        f"{', '.join(run['failed']) or 'none'}")
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run",
                                 description="End-to-end auditstream benchmark.")
    ap.add_argument("--events", type=int, default=1_000_000, help="events to load (N)")
    ap.add_argument("--workers", type=parse_workers, default="1,default",
                    help="comma list of `serve --workers` counts to measure, side by side; "
                    "'default' is the count serve uses (AUDITSTREAM_WORKERS) "
                    "(default: 1,default)")
    ap.add_argument("--backend", choices=("sqlite", "clickhouse"), default="sqlite",
                    help="clickhouse: also measure the ClickHouse index (embedded chdb, one "
                    "server process), after the SQLite runs of the same workload")
    ap.add_argument("--drop-bodies", action="store_true",
                    help="the clickhouse run drops the log's indexed bodies "
                    "(AUDITSTREAM_DROP_INDEXED_BODIES)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each worker count, interleaved (1,2,3,1,2,3,...)")
    ap.add_argument("--out", help="also write the JSON here (default bench/out/bench-N.json); "
                    "the summary table goes beside it (.md)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tenants", type=int, default=200)
    ap.add_argument("--ingest-clients", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=32, help="clients for the 32-client "
                    "phases (/healthz, single POSTs, queries)")
    ap.add_argument("--single-seconds", type=float, default=10)
    ap.add_argument("--single-pool", type=int, default=20_000,
                    help="distinct single-event bodies (sent round robin)")
    ap.add_argument("--query-seconds", type=float, default=15,
                    help="per query kind at full concurrency (a third of it at 1 and 4 "
                    "clients)")
    ap.add_argument("--floor-seconds", type=float, default=5)
    ap.add_argument("--raw-events", type=int, help="events for the raw-SQLite ceiling "
                    "(default: all N)")
    ap.add_argument("--workdir", help="parent directory of the temporary work directory")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--server-switch-interval", type=float, metavar="S",
                    help="experiment: run the server with sys.setswitchinterval(S)")
    ap.add_argument("--profile", metavar="DIR", help="py-spy record the server per phase "
                    "into DIR (collapsed stacks; slows the server: not for the figures)")
    args = ap.parse_args(argv)
    if isinstance(args.workers, str):  # the default, not parsed by argparse
        args.workers = parse_workers(args.workers)

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="auditstream-bench-", dir=args.workdir))
    out_path = Path(args.out) if args.out else ROOT / "bench" / "out" / f"bench-{args.events}.json"
    report: dict[str, Any] = {"command": "python -m bench.run " + " ".join(
        sys.argv[1:] if argv is None else argv), "workers": args.workers,
        "repeat": args.repeat, "backend": args.backend, "machine": machine(),
        "server_settings": server_settings(args), "engine_source": source_digest()}
    runs: list[dict[str, Any]] = []
    try:
        # the workload, once for every run
        now = time.time_ns() // 1000
        log(f"generating {args.events} events into {work}")
        t0 = time.perf_counter()
        spool = Spool(work / "bodies.bin")
        spool.write(args.events, args.seed, now, args.tenants)
        singles_src = list(bench_events(args.single_pool, seed=args.seed + 1, now_us=now,
                                        tenants=args.tenants))
        log(f"  {time.perf_counter() - t0:.1f} s, {len(spool.index)} bodies, "
            f"{spool.path.stat().st_size / max(1, args.events):.0f} bytes/event")

        # tenants and keys through the CLI, once: each run starts from a copy of this file
        template = work / "template.db"
        tenants = sorted(set(spool.counts) | {t for t, _ in singles_src})
        t0 = time.perf_counter()
        keys = create_tenants(template, tenants)
        log(f"created {len(keys)} tenants and keys with the CLI in "
            f"{time.perf_counter() - t0:.1f} s")
        head = Http(0)
        singles = []
        for tenant, ev in singles_src:
            body = orjson.dumps(ev)
            singles.append(head.post_head(keys[tenant]) + b"%d\r\n\r\n" % len(body) + body)
        queries = Queries(spool.counts, now)

        with spool:
            for repeat in range(args.repeat):
                for workers in args.workers:
                    runs.append(run_config(args, workers, repeat, work, template, spool,
                                           singles, keys, queries))
                if args.backend == "clickhouse":  # one process serves it (cli serve)
                    runs.append(run_config(args, 1, repeat, work, template, spool,
                                           singles, keys, queries, backend="clickhouse"))
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["summary"] = summarise(runs)
    report["failed"] = {w: sorted(k for k, v in per.items() if not v["met"])
                        for w, per in report["summary"].items()}
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    report["runs"] = runs
    table = markdown(report["summary"])
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text + "\n")
    out_path.with_suffix(".md").write_text(table)
    sys.stdout.write(text + "\n")
    sys.stderr.write("\n" + table)
    log(f"wrote {out_path} and {out_path.with_suffix('.md').name}; missed (median): "
        + "; ".join(f"workers {w}: {', '.join(f) or 'none'}"
                    for w, f in report["failed"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
