"""A full disk stops writes, not reads: the server starts, serves what is stored and
answers ingest with 503 and Retry-After, storing nothing half-way."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from auditstream.auth.catalog import Catalog
from auditstream.dbapi import sqlite3
from auditstream.integrity.keys import load_or_create_signer
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us, now_us
from auditstream.store.sqlite import SQLiteEventStore
from conftest import free_port


def test_server_on_a_full_disk_serves_reads_and_refuses_writes(tmp_path: Path) -> None:
    db = tmp_path / "full.db"
    signer = load_or_create_signer(db, "auditstream.local")
    catalog = Catalog(db)
    catalog.create_tenant("acme")
    key = catalog.create_key("acme").secret
    catalog.close()

    async def seed() -> None:
        store = SQLiteEventStore(db, signer=signer)
        now = format_us(now_us())
        await store.append("acme", [{"id": new_event_id(), "tenant": "acme", "timestamp": now,
                                     "received_at": now, "type": "login", "severity": "info"}
                                    for _ in range(50)])
        await store.close()

    asyncio.run(seed())
    # Keep the file open here so its WAL index exists at full size; the server may then
    # write nothing more to any file: RLIMIT_FSIZE makes every growing write fail (EFBIG),
    # as a full disk would.
    holder = sqlite3.connect(db)
    holder.execute("SELECT COUNT(*) FROM events").fetchone()
    wal = db.with_name(db.name + "-wal")

    def no_room() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = wal.stat().st_size if wal.exists() else 0
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    port = free_port()
    env = {**os.environ, "AUDITSTREAM_DB": str(db), "AUDITSTREAM_PORT": str(port),
           "AUDITSTREAM_DEMO": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "auditstream", "serve"], env=env,
                            preexec_fn=no_room, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        c = httpx.Client(base_url=url, headers={"X-API-Key": key or ""})
        assert len(c.get("/v1/events?limit=100").json()["data"]) == 50
        r = c.post("/v1/events", content=b'[{"type":"a"},{"type":"b"}]',
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 503 and r.headers["retry-after"]
        assert r.headers["content-type"] == "application/problem+json"
        assert len(c.get("/v1/events?limit=100").json()["data"]) == 50
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        holder.close()
