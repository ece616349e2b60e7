"""Live-stream fan-out benchmark (issue 9), each figure next to a baseline from the same run.

    python -m bench.stream [--subscribers 1000] [--idle 5000] [--rate 2000] [--seconds 20]
                           [--workers N] [--out FILE]

A real server (``auditstream serve``, the default worker count unless ``--workers``) on a
fresh file; the subscribers live in a second process (asyncio, the ``websockets`` client),
so their CPU is theirs. In order:

1. ingest throughput with **no subscriber**: 4 clients POST 200-event batches for
   ``--ingest-seconds`` (the baseline of 3.);
2. ``--subscribers`` WebSocket subscribers attach, each with its own filter matching ~1 %
   of events (``type`` is one of 100 types; each filter also excludes an actor of its own,
   so no two filters are equal);
3. ingest throughput again, with them attached (figure: ratio to 1., target >= 0.85);
4. paced ingest at ``--rate`` events/s for ``--seconds``; each event carries the time it
   was sent, each subscriber records when it received it: ingest-to-delivery latency p50
   and p99 (targets 50 / 150 ms);
5. correctness: every subscriber must have received exactly the events of its type
   ingested in 3. and 4. (by seq, none missing, none twice);
6. the subscribers leave; ``--idle`` idle subscribers attach: the server's RSS (all its
   processes) with them, next to its RSS before (target < 350 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from .proctree import ProcessTree
from .run import (
    Http,
    Profiler,
    Server,
    create_tenants,
    free_port,
    machine,
    pct,
    source_digest,
)

TYPES = [f"T{i:02d}" for i in range(100)]
TENANT = "fanout"


# -- the subscribers' process -----------------------------------------------------------------


async def _subscriber(url: str, key: str, filters: dict[str, Any], q: str | None,
                      out: dict[str, Any], ready: asyncio.Event, stop: asyncio.Event,
                      compression: str | None) -> None:
    from websockets.asyncio.client import connect

    async with connect(f"{url}?token={key}", max_queue=None, open_timeout=60,
                       ping_interval=None, compression=compression) as ws:
        msg: dict[str, Any] = {"type": "subscribe", "filters": filters}
        if q:
            msg["q"] = q
        await ws.send(orjson.dumps(msg).decode())
        first = orjson.loads(await ws.recv())
        assert first["type"] == "subscribed", first
        ready.set()
        seqs: list[int] = out["seqs"]
        lat: list[int] = out["lat_us"]
        recv = asyncio.ensure_future(ws.recv())
        halt = asyncio.ensure_future(stop.wait())
        while True:
            done, _ = await asyncio.wait({recv, halt}, return_when=asyncio.FIRST_COMPLETED)
            if recv in done:
                now = time.time_ns()
                m = orjson.loads(recv.result())
                if m["type"] == "event":
                    seqs.append(m["seq"])
                    sent = (m["event"].get("context") or {}).get("sent_us")
                    if sent:
                        lat.append(now // 1000 - sent)
                recv = asyncio.ensure_future(ws.recv())
            if halt in done:
                recv.cancel()
                return


def subscribers_main(conn: Connection, url: str, key: str, compression: str | None) -> None:
    """Commands from the pipe: ("attach", n, idle) → "ready"; ("report",) → results;
    ("detach",) → "detached"; ("exit",)."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []
        outs: list[dict[str, Any]] = []
        stop = asyncio.Event()
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd[0] == "attach":
                n, idle = cmd[1], cmd[2]
                stop = asyncio.Event()
                readies = []
                for i in range(n):
                    out: dict[str, Any] = {"i": i, "seqs": [], "lat_us": []}
                    outs.append(out)
                    ready = asyncio.Event()
                    readies.append(ready)
                    filters = {"type": "idle-type"} if idle else {"type": TYPES[i % 100]}
                    q = None if idle else f"-actor.id:nobody{i}"
                    tasks.append(asyncio.create_task(
                        _subscriber(url, key, filters, q, out, ready, stop, compression)))
                    if i % 100 == 99:
                        await asyncio.sleep(0.05)  # connect in waves, not 5,000 at once
                await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 300)
                conn.send(("ready", n))
            elif cmd[0] == "report":
                conn.send(("report", [{"i": o["i"], "seqs": o["seqs"], "lat_us": o["lat_us"]}
                                      for o in outs]))
            elif cmd[0] == "detach":
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
                tasks.clear()
                outs.clear()
                conn.send(("detached",))
            elif cmd[0] == "exit":
                return

    asyncio.run(main())


# -- ingest ------------------------------------------------------------------------------------


def batch_body(start: int, n: int, sent_us: int | None = None) -> tuple[bytes, list[str]]:
    types = [TYPES[(start + j) % 100] for j in range(n)]
    events = []
    for j, t in enumerate(types):
        ev: dict[str, Any] = {"type": t, "title": f"fan-out {start + j}",
                              "actor": {"id": f"a{(start + j) % 977}"}}
        if sent_us is not None:
            ev["context"] = {"sent_us": sent_us}
        events.append(ev)
    return orjson.dumps(events), types


class Ingest:
    """Every acknowledged event's (seq, type), for the correctness check."""

    def __init__(self, http: Http, key: str):
        self.http, self.key = http, key
        self.acked: list[tuple[int, str]] = []
        self.counter = 0

    async def post(self, conn: Any, body: bytes, types: list[str]) -> None:
        req = self.http.post_head(self.key) + str(len(body)).encode() + b"\r\n\r\n" + body
        status, out = await conn.send(req)
        if status != 201:
            raise RuntimeError(f"ingest answered {status}: {out[:300]!r}")
        for d, t in zip(orjson.loads(out)["data"], types, strict=True):
            self.acked.append((d["seq"], t))

    async def throughput(self, seconds: float, clients: int = 4, batch: int = 200) -> float:
        conns = await self.http.connections(clients)
        end = time.monotonic() + seconds
        sent = 0

        async def client(c: Any) -> None:
            nonlocal sent
            while time.monotonic() < end:
                start = self.counter
                self.counter += batch
                body, types = batch_body(start, batch)
                await self.post(c, body, types)
                sent += batch

        t0 = time.monotonic()
        await asyncio.gather(*(client(c) for c in conns))
        elapsed = time.monotonic() - t0
        for c in conns:
            c.close()
        return sent / elapsed

    async def paced(self, rate: int, seconds: float, tick: float = 0.05) -> float:
        """``rate`` events/s in batches every ``tick``; answers the rate achieved."""
        conns = await self.http.connections(4)
        per_tick = max(1, round(rate * tick))
        ticks = round(seconds / tick)
        t0 = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        free = list(conns)
        for k in range(ticks):
            await asyncio.sleep(max(0.0, t0 + k * tick - time.monotonic()))
            while not free:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for d in done:
                    d.result()
            c = free.pop()
            start = self.counter
            self.counter += per_tick
            body, types = batch_body(start, per_tick, sent_us=time.time_ns() // 1000)

            async def one(c: Any = c, body: bytes = body, types: list[str] = types) -> None:
                try:
                    await self.post(c, body, types)
                finally:
                    free.append(c)

            pending.add(asyncio.create_task(one()))
        if pending:
            for d in (await asyncio.wait(pending))[0]:
                d.result()
        elapsed = time.monotonic() - t0
        for c in conns:
            c.close()
        return per_tick * ticks / elapsed


# -- the run -----------------------------------------------------------------------------------


def call(conn: Connection, *cmd: Any, timeout: float = 600) -> Any:
    conn.send(cmd)
    if not conn.poll(timeout):
        raise RuntimeError(f"the subscriber process did not answer {cmd[0]!r}")
    return conn.recv()


def log(msg: str) -> None:
    print(f"[stream {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    db = work / "stream.db"
    key = create_tenants(db, [TENANT])[TENANT]
    port = free_port()
    # One key holds every subscriber: lift the per-credential stream limit for this server.
    os.environ["AUDITSTREAM_STREAM_MAX_CONNECTIONS_PER_KEY"] = str(
        max(args.subscribers, args.idle) + 10)
    server = Server(db, port, work / "server.log", workers=args.workers)
    server.start()
    server.wait_idle()
    http = Http(port)
    ingest = Ingest(http, key)
    url = f"ws://127.0.0.1:{port}/v1/events/stream"
    parent, child = multiprocessing.get_context("spawn").Pipe()
    subs = multiprocessing.get_context("spawn").Process(
        target=subscribers_main, daemon=True,
        args=(child, url, key, None if args.no_compression else "deflate"))
    subs.start()
    report: dict[str, Any] = {"workers": args.workers,
                              "permessage_deflate": not args.no_compression}
    try:
        log("ingest with no subscriber")
        await ingest.throughput(2)  # warm-up, not counted
        alone = await ingest.throughput(args.ingest_seconds)
        log(f"  {alone:,.0f} events/s")
        before = ingest.counter
        log(f"attaching {args.subscribers} subscribers")
        t0 = time.monotonic()
        call(parent, "attach", args.subscribers, False)
        attach_s = time.monotonic() - t0
        first_seq = max((s for s, _ in ingest.acked), default=0)
        log(f"  attached in {attach_s:.1f} s; ingest with them")
        attached = await ingest.throughput(args.ingest_seconds)
        log(f"  {attached:,.0f} events/s ({attached / alone:.2f} of alone)")
        log(f"paced ingest: {args.rate} events/s for {args.seconds} s")
        cpu0 = server.cpu_seconds()
        client_tree = ProcessTree(subs.pid)
        client0 = client_tree.cpu_seconds()
        profiler = Profiler(args.profile, server.pid)
        profiler.start("paced")
        achieved = await ingest.paced(args.rate, args.seconds)
        profiler.stop()
        cpu = (server.cpu_seconds() - cpu0) / args.seconds
        client_cpu = (client_tree.cpu_seconds() - client0) / args.seconds
        expected_total = ingest.counter - before
        # Let the subscribers drain (up to a minute), then compare.
        deadline = time.monotonic() + 60
        want: dict[str, list[int]] = {t: [] for t in TYPES}
        for seq, t in ingest.acked:
            if seq > first_seq:
                want[t].append(seq)
        for ws in want.values():
            ws.sort()
        while True:
            results = call(parent, "report")[1]
            got = sum(len(r["seqs"]) for r in results)
            need = sum(len(want[TYPES[r["i"] % 100]]) for r in results)
            if got >= need or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        exact = sum(1 for r in results if r["seqs"] == want[TYPES[r["i"] % 100]])
        lat = sorted(float(v) for r in results for v in r["lat_us"])
        deliveries = sum(len(r["lat_us"]) for r in results)
        report["fanout"] = {
            "subscribers": args.subscribers, "events_ingested": expected_total,
            "paced_rate_events_per_s": round(achieved), "deliveries_paced": deliveries,
            "deliveries_per_s": round(deliveries / args.seconds),
            "subscribers_exact": exact, "deliveries_expected": need, "deliveries_got": got,
            "latency_p50_ms": round((pct(lat, 0.5) or 0) / 1000, 1) if lat else None,
            "latency_p99_ms": round((pct(lat, 0.99) or 0) / 1000, 1) if lat else None,
            "latency_max_ms": round(lat[-1] / 1000, 1) if lat else None,
            "server_cpu_cores_paced": round(cpu, 2),
            "subscriber_process_cpu_cores_paced": round(client_cpu, 2),
            "ingest_alone_events_per_s": round(alone),
            "ingest_attached_events_per_s": round(attached),
            "ingest_attached_vs_alone": round(attached / alone, 3),
            "attach_seconds": round(attach_s, 1),
        }
        log(f"  exact {exact}/{args.subscribers}; latency p50 "
            f"{report['fanout']['latency_p50_ms']} ms p99 {report['fanout']['latency_p99_ms']}"
            f" ms; {deliveries / args.seconds:,.0f} deliveries/s")
        call(parent, "detach")
        await asyncio.sleep(2)
        rss_before = server.tree.sample().rss_kb / 1024
        log(f"attaching {args.idle} idle subscribers (server RSS now {rss_before:.0f} MB)")
        call(parent, "attach", args.idle, True)
        await asyncio.sleep(2)
        sample = server.tree.sample()
        report["idle"] = {"subscribers": args.idle, "rss_before_mb": round(rss_before, 1),
                          "rss_with_idle_mb": round(sample.rss_kb / 1024, 1),
                          "pss_with_idle_mb": round(server.tree.pss_kb() / 1024, 1)}
        log(f"  RSS {report['idle']['rss_with_idle_mb']} MB")
        call(parent, "detach")
    finally:
        if subs.is_alive():
            with contextlib.suppress(RuntimeError, OSError, EOFError):
                call(parent, "exit", timeout=5)
        subs.terminate()
        server.stop()
    f, i = report["fanout"], report["idle"]
    report["figures"] = [
        {"figure": "subscribers receiving exactly their events", "value": f["subscribers_exact"],
         "target": f"= {args.subscribers}", "met": f["subscribers_exact"] == args.subscribers},
        {"figure": "ingest-to-delivery p50 (ms)", "value": f["latency_p50_ms"],
         "target": "< 50", "met": f["latency_p50_ms"] is not None and f["latency_p50_ms"] < 50},
        {"figure": "ingest-to-delivery p99 (ms)", "value": f["latency_p99_ms"],
         "target": "< 150",
         "met": f["latency_p99_ms"] is not None and f["latency_p99_ms"] < 150},
        {"figure": "ingest with subscribers ÷ without", "value": f["ingest_attached_vs_alone"],
         "target": ">= 0.85", "baseline": f["ingest_alone_events_per_s"],
         "met": f["ingest_attached_vs_alone"] >= 0.85},
        {"figure": f"server RSS with {args.idle} idle subscribers (MB)",
         "value": i["rss_with_idle_mb"], "target": "< 350", "baseline": i["rss_before_mb"],
         "met": i["rss_with_idle_mb"] < 350},
    ]
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__)
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--idle", type=int, default=5000)
    ap.add_argument("--rate", type=int, default=2000, help="paced ingest, events/s")
    ap.add_argument("--seconds", type=float, default=20, help="paced ingest duration")
    ap.add_argument("--ingest-seconds", type=float, default=10)
    ap.add_argument("--workers", type=int, default=None,
                    help="serve --workers (default: the server's default)")
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--no-compression", action="store_true",
                    help="subscribers do not offer permessage-deflate (default: they do, as "
                    "browsers and the websockets client do)")
    ap.add_argument("--profile", metavar="DIR", help="py-spy record the server during the "
                    "paced ingest into DIR (slows it: not for the figures)")
    args = ap.parse_args(argv)
    if args.workers is None:
        from auditstream.settings import Settings
        args.workers = Settings().workers
    with tempfile.TemporaryDirectory(prefix="auditstream-stream-bench-") as tmp:
        report = asyncio.run(run(args, Path(tmp)))
    report.update(command="python -m bench.stream " + " ".join(sys.argv[1:] if argv is None
                                                                else argv),
                  machine=machine(), engine_source=source_digest())
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    missed = [f["figure"] for f in report["figures"] if not f["met"]]
    log("missed: " + ", ".join(missed) if missed else "all figures met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
