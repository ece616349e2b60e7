"""Push delivery benchmark (issue 10), each figure next to a baseline from the same run.

    python -m bench.push [--events 100000] [--rate 1000] [--seconds 20] [--workers N]
                         [--out FILE]

A real server (``auditstream serve``, the default worker count unless ``--workers``) on a
fresh file, and a webhook receiver in a process of its own (uvicorn, the ASGI app below:
it records each event's seq and arrival time, and answers 200). In order:

1. ingest throughput with **no integration** (4 clients, 200-event batches): the
   baseline of 2.;
2. a webhook integration (native format, batches of 500, every event) is created, and the
   same ingest runs again while it delivers (figure: ratio to 1., target >= 0.80);
3. the integration is paused, ``--events`` events are ingested, and it is resumed: the
   time until the receiver has all of them is the sustained delivery rate (target >=
   5,000 events/s);
4. paced ingest at ``--rate`` events/s for ``--seconds``; each event carries the time it
   was sent: delivery lag (sent → received by the receiver) p50 and p99 (target p99 < 1 s);
5. correctness: the receiver got every acknowledged event, first deliveries in seq order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from .run import Http, Server, free_port, machine, pct, source_digest
from .stream import Ingest

TENANT = "push"
#: A canonical event's own seq (nested objects hold no "seq" key in this workload).
SEQ = re.compile(rb'"seq":(\d+)')


# -- the receiver's process ---------------------------------------------------------------


def receiver_main(port: int) -> None:
    import uvicorn

    seqs: list[int] = []
    lags_ms: list[float] = []
    arrivals: list[float] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "POST":
            now = time.time()
            if b'"sent_us"' in body:  # the paced phase: every event's lag
                for event in orjson.loads(body)["data"]:
                    seqs.append(event["seq"])
                    arrivals.append(now)
                    lags_ms.append((now * 1e6 - event["context"]["sent_us"]) / 1000)
            else:
                # The receiver shares the server's 2 cores: it only picks the seqs out (a
                # real receiver runs elsewhere), so its CPU does not count against ingest.
                found = [int(s) for s in SEQ.findall(body)]
                seqs.extend(found)
                arrivals.extend([now] * len(found))
            answer = b"{}"
        else:  # GET /stats?since=N: what arrived from the N-th event on
            since = int(scope["query_string"].decode().partition("=")[2] or 0)
            answer = orjson.dumps({"count": len(seqs), "seqs": seqs[since:],
                                   "arrivals": arrivals[since:], "lags_ms": lags_ms})
            if scope["path"] == "/reset":
                lags_ms.clear()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc = multiprocessing.get_context("spawn").Process(
            target=receiver_main, args=(self.port,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        self.proc.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.stats()
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the receiver did not start")

    def stats(self, since: int | None = None, path: str = "/stats") -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}{path}"
        if since is not None:
            url += f"?since={since}"
        else:
            url += f"?since={2**62}"  # the count only
        return httpx.get(url, timeout=30).json()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(10)


# -- the run ------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[push {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def admin_key(db: Path) -> str:
    from auditstream.auth.catalog import Catalog
    from auditstream.cli import _migrate
    from auditstream.settings import Settings

    catalog = Catalog(db)
    catalog.create_tenant(TENANT)
    key = catalog.create_key(TENANT, ["events:read", "events:write", "admin"]).secret
    catalog.close()
    _migrate(Settings(db=str(db)))
    assert key is not None
    return key


async def wait_count(receiver: Receiver, n: int, timeout: float) -> float:
    """Seconds until the receiver holds ``n`` events."""
    t0 = time.monotonic()
    while receiver.stats()["count"] < n:
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"the receiver has {receiver.stats()['count']} of {n} events")
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    db = work / "push.db"
    key = admin_key(db)
    os.environ["AUDITSTREAM_PUSH_ALLOW_PRIVATE"] = "127.0.0.1"
    server = Server(db, free_port(), work / "server.log", workers=args.workers)
    receiver = Receiver()
    receiver.start()
    server.start()
    api = httpx.Client(base_url=f"http://127.0.0.1:{server.port}",
                       headers={"X-API-Key": key}, timeout=60)
    ingest = Ingest(Http(server.port), key)
    try:
        log("ingest with no integration")
        await ingest.throughput(2)  # warm-up, not counted
        alone = await ingest.throughput(args.ingest_seconds)
        r = api.post("/v1/integrations", json={
            "name": "bench", "kind": "webhook",
            "config": {"url": receiver.url, "batch_size": 500}})
        assert r.status_code == 201, r.text
        integration = r.json()["id"]
        first_seq = r.json()["cursor"]
        log("ingest while delivering")
        before = ingest.counter
        attached = await ingest.throughput(args.ingest_seconds)
        await wait_count(receiver, ingest.counter - before, 120)

        log(f"backlog of {args.events} events, then resume")
        assert api.patch(f"/v1/integrations/{integration}",
                         json={"enabled": False}).status_code == 200
        have = receiver.stats()["count"]
        while ingest.counter - before - have < args.events:
            await ingest.throughput(1)
        backlog = ingest.counter - before - have
        assert api.patch(f"/v1/integrations/{integration}",
                         json={"enabled": True}).status_code == 200
        drain_s = await wait_count(receiver, have + backlog, 600)

        log(f"paced ingest: {args.rate} events/s for {args.seconds} s")
        receiver.stats(path="/reset")
        paced_from = receiver.stats()["count"]
        achieved = await ingest.paced(args.rate, args.seconds)
        await wait_count(receiver, ingest.counter - before, 120)
        lags = receiver.stats(since=paced_from)["lags_ms"]
        everything = receiver.stats(since=0)
        shown = api.get(f"/v1/integrations/{integration}").json()
    finally:
        server.stop()
        receiver.stop()
        os.environ.pop("AUDITSTREAM_PUSH_ALLOW_PRIVATE", None)
    acked = sorted(s for s, _ in ingest.acked if s > first_seq)
    first_seen: list[int] = []
    seen: set[int] = set()
    for s in everything["seqs"]:
        if s not in seen:
            seen.add(s)
            first_seen.append(s)
    report: dict[str, Any] = {
        "workers": args.workers,
        "ingest_alone_events_per_s": round(alone),
        "ingest_delivering_events_per_s": round(attached),
        "ingest_delivering_vs_alone": round(attached / alone, 3),
        "backlog_events": backlog,
        "delivery_events_per_s": round(backlog / drain_s),
        "paced_rate_achieved": round(achieved),
        "lag_p50_ms": pct(lags, 0.5), "lag_p99_ms": pct(lags, 0.99),
        "lag_samples": len(lags),
        "delivered_every_acknowledged_event": set(acked) <= seen,
        "first_deliveries_in_seq_order": first_seen == sorted(first_seen),
        "duplicates": len(everything["seqs"]) - len(seen),
        "integration_after": {k: shown[k] for k in ("state", "lag", "failures",
                                                      "dead_letters")},
    }
    report["figures"] = [
        {"figure": "ingest while delivering ÷ without", "value":
            report["ingest_delivering_vs_alone"], "target": ">= 0.80",
         "baseline": report["ingest_alone_events_per_s"],
         "met": report["ingest_delivering_vs_alone"] >= 0.80},
        {"figure": "sustained delivery (events/s)", "value": report["delivery_events_per_s"],
         "target": ">= 5000", "met": report["delivery_events_per_s"] >= 5000},
        {"figure": f"delivery lag p99 at {args.rate} events/s (ms)",
         "value": report["lag_p99_ms"], "target": "< 1000",
         "met": report["lag_p99_ms"] is not None and report["lag_p99_ms"] < 1000},
        {"figure": "every event delivered, in order",
         "value": report["delivered_every_acknowledged_event"]
         and report["first_deliveries_in_seq_order"], "target": "true",
         "met": report["delivered_every_acknowledged_event"]
         and report["first_deliveries_in_seq_order"]},
    ]
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.push", description=__doc__)
    ap.add_argument("--events", type=int, default=100_000, help="backlog delivered in 3.")
    ap.add_argument("--rate", type=int, default=1000, help="paced ingest, events/s")
    ap.add_argument("--seconds", type=float, default=20, help="paced ingest duration")
    ap.add_argument("--ingest-seconds", type=float, default=10)
    ap.add_argument("--workers", type=int, default=None,
                    help="serve --workers (default: the server's default)")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args(argv)
    if args.workers is None:
        from auditstream.settings import Settings
        args.workers = Settings().workers
    with tempfile.TemporaryDirectory(prefix="auditstream-push-bench-") as tmp:
        report = asyncio.run(run(args, Path(tmp)))
    report.update(command="python -m bench.push " + " ".join(sys.argv[1:] if argv is None
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
