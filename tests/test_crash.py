"""Acknowledged means durable: SIGKILL the server during concurrent ingest, lose nothing.

Both process layouts: ``--workers 1`` (one process) and the default (a supervisor, a writer
process and HTTP workers, all killed at once as a power cut would)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from auditstream.auth.catalog import Catalog
from conftest import free_port


def start(db: Path, port: int, workers: list[str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "auditstream", "serve", "--db", str(db), "--port", str(port),
         "--no-demo", *workers],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.05)
    kill_all(proc)
    raise RuntimeError("server did not start: " + proc.stderr.read().decode()[-2000:])


def kill_all(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the server and every process it started
    proc.wait()


@pytest.mark.parametrize("workers", [["--workers", "1"], []], ids=["one-process", "default"])
def test_sigkill_loses_no_acknowledged_event_and_leaves_no_gap(
    tmp_path: Path, workers: list[str],
) -> None:
    db = tmp_path / "crash.db"
    cat = Catalog(db)
    cat.create_tenant("acme")
    key = cat.create_key("acme").secret
    cat.close()
    port = free_port()
    proc = start(db, port, workers)
    acked: list[tuple[str, int]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}",
                          headers={"X-API-Key": key}, timeout=10) as c:
            i = 0
            while not stop.is_set():
                body = orjson.dumps([{"type": "crash.test", "title": f"c{n} r{i} e{j}"}
                                     for j in range(1 + (i % 50))])
                try:
                    r = c.post("/v1/events", content=body)
                except httpx.TransportError:
                    return  # the server died mid-request: unacknowledged, may or may not exist
                if r.status_code == 201:
                    with lock:
                        acked.extend((d["id"], d["seq"]) for d in r.json()["data"])
                i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 3000 and time.monotonic() < deadline:
        time.sleep(0.02)
    kill_all(proc)
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 3000

    proc = start(db, port, workers)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}",
                          headers={"X-API-Key": key}, timeout=30) as c:
            stored: dict[str, int] = {}
            url = "/v1/events?limit=1000&order=asc"
            while url:
                r = c.get(url)
                stored.update((e["id"], e["seq"]) for e in r.json()["data"])
                link = r.headers.get("link")
                url = link[1:link.index(">")] if link else ""
            missing = [i for i, s in acked if stored.get(i) != s]
            assert missing == []
            assert sorted(stored.values()) == list(range(1, len(stored) + 1))
            # And the log goes on where it stopped.
            r = c.post("/v1/events", content=b'{"type":"after"}')
            assert r.json()["data"][0]["seq"] == len(stored) + 1
    finally:
        kill_all(proc)
