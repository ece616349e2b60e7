"""``auditstream serve --workers N``: a writer process and N HTTP workers, as real processes.

Nothing acknowledged is lost when the writer or a worker is killed; seqs stay gap-free and
``verify`` passes; ten servers started at once on one fresh file all come up; a second
process reads the commit feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from auditstream.auth.catalog import Catalog
from auditstream.dbapi import sqlite3
from auditstream.log.feed import CommitFeed
from auditstream.log.prepared import prepare, segments
from auditstream.log.process import RemoteChannel
from auditstream.log.protocol import AppendRequest
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us, now_us
from auditstream.server import ENV_KEY, ENV_RUNTIME
from conftest import free_port


@dataclass
class MultiServer:
    url: str
    proc: subprocess.Popen[bytes]
    runtime: Path
    key: str  # the writer socket's key

    @property
    def socket(self) -> str:
        return str(self.runtime / "writer.sock")

    def writer_pid(self) -> int:
        return int((self.runtime / "writer.sock.pid").read_text())

    def worker_pids(self) -> list[int]:
        """The HTTP workers: the supervisor's children but the writer and multiprocessing's
        resource tracker."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        pids = [int(p) for p in children.split() if int(p) != self.writer_pid()]
        return [p for p in pids if alive(p)
                and b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]


def alive(pid: int) -> bool:
    """False for a killed child its parent has not reaped yet (a zombie still shows in
    /proc as the parent's child, with an empty cmdline)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, (proc.stderr.read() if proc.stderr else b"").decode()
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture
def multi(tmp_path: Path) -> Iterator[Any]:
    started: list[MultiServer] = []

    def start(db: Path, workers: int = 2) -> MultiServer:
        runtime = tmp_path / f"run{len(started)}"
        runtime.mkdir(mode=0o700)
        key = secrets.token_hex(32)
        port = free_port()
        env = {**os.environ, ENV_RUNTIME: str(runtime), ENV_KEY: key,
               "AUDITSTREAM_DEMO": "false"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "auditstream", "serve", "--db", str(db), "--port",
             str(port), "--workers", str(workers)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        server = MultiServer(f"http://127.0.0.1:{port}", proc, runtime, key)
        started.append(server)
        wait_up(server.url, proc)
        return server

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.send_signal(signal.SIGINT)
            try:
                s.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                s.proc.kill()


def api_key(db: Path, tenant: str = "acme") -> str:
    catalog = Catalog(db)
    try:
        if not catalog.tenant_exists(tenant):
            catalog.create_tenant(tenant)
        secret = catalog.create_key(tenant).secret
        assert secret is not None
        return secret
    finally:
        catalog.close()


def verify(db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auditstream", "verify", "--db", str(db)],
                          capture_output=True, text=True, timeout=120)


def hammer(url: str, key: str, stop: threading.Event, acked: list[str],
           clients: int = 6) -> list[threading.Thread]:
    """Clients posting 20-event batches with their own ids until ``stop``; the ids of
    every acknowledged (2xx) batch go to ``acked``."""
    def client(n: int) -> None:
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30) as c:
            i = 0
            while not stop.is_set():
                batch = [{"id": f"c{n}-{i}-{j}", "type": "load"} for j in range(20)]
                i += 1
                try:
                    r = c.post("/v1/events", content=orjson.dumps(batch),
                               headers={"Content-Type": "application/json"})
                except httpx.TransportError:
                    continue
                if r.status_code in (200, 201):
                    acked.extend(e["id"] for e in batch)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    return threads


def stored(db: Path, tenant: str = "acme") -> tuple[set[str], list[int]]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT id, seq FROM events WHERE tenant=? ORDER BY seq",
                            (tenant,)).fetchall()
    finally:
        conn.close()
    return {r[0] for r in rows}, [r[1] for r in rows]


@pytest.mark.parametrize("victim", ["writer", "worker"])
def test_killing_a_process_loses_nothing_acknowledged(
    multi: Any, tmp_path: Path, victim: str,
) -> None:
    db = tmp_path / "k.db"
    key = api_key(db)
    srv = multi(db)
    stop, acked = threading.Event(), []
    threads = hammer(srv.url, key, stop, acked)
    deadline = time.monotonic() + 30
    while len(acked) < 1000 and time.monotonic() < deadline:
        time.sleep(0.05)
    if victim == "writer":
        pid = srv.writer_pid()
    else:
        workers = srv.worker_pids()
        assert len(workers) == 2
        pid = workers[0]
    os.kill(pid, signal.SIGKILL)
    before = len(acked)
    # Keep going until the server has come back and acknowledged more.
    deadline = time.monotonic() + 60
    while len(acked) < before + 1000 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= before + 1000, "the server did not recover"
    # The other worker may have carried the load alone; the supervisor replaces the dead
    # one on its next check.
    deadline = time.monotonic() + 30
    while (pid in (srv.writer_pid(), *srv.worker_pids()) or len(srv.worker_pids()) != 2) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid not in (srv.writer_pid(), *srv.worker_pids())  # it was replaced
    assert len(srv.worker_pids()) == 2
    ids, seqs = stored(db)
    assert set(acked) <= ids  # every acknowledged event is there
    assert seqs == list(range(1, len(seqs) + 1))  # gap-free
    srv.proc.send_signal(signal.SIGINT)
    srv.proc.wait(timeout=30)
    p = verify(db)
    assert p.returncode == 0, p.stderr


def test_the_processes_of_a_killed_supervisor_stop_and_free_the_port(
    multi: Any, tmp_path: Path,
) -> None:
    """``kill -9`` of the supervisor alone: its writer and workers stop by themselves (the
    writer commits what it accepted), so the port is free again and a new server on the
    same file and port starts and goes on with the log."""
    db = tmp_path / "orphans.db"
    key = api_key(db)
    srv = multi(db)
    children = [srv.writer_pid(), *srv.worker_pids()]
    r = httpx.post(srv.url + "/v1/events", headers={"X-API-Key": key},
                   content=b'[{"type":"before"}]')
    assert r.status_code == 201
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait()
    deadline = time.monotonic() + 30
    while any(alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in children)
    port = int(srv.url.rsplit(":", 1)[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "auditstream", "serve", "--db", str(db), "--port", str(port),
         "--no-demo"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_up(srv.url, proc)
        r = httpx.post(srv.url + "/v1/events", headers={"X-API-Key": key},
                       content=b'[{"type":"after"}]')
        assert r.status_code == 201
        assert r.json()["data"][0]["seq"] == 2
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_ten_servers_start_at_once_on_a_fresh_file(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    ports = [free_port() for _ in range(10)]
    procs = [subprocess.Popen(
        [sys.executable, "-m", "auditstream", "serve", "--db", str(db), "--port", str(p),
         "--no-demo"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for p in ports]
    try:
        for p, proc in zip(ports, procs, strict=True):
            # Forty processes import the app at once on 2 cores: give them time.
            wait_up(f"http://127.0.0.1:{p}", proc, timeout=240)
        key = api_key(db)
        for p in ports:  # every one of them writes
            # One worker answering is not both up: ten servers booting on 2 cores take
            # longer than httpx's 5 s default to bring up the other.
            r = httpx.post(f"http://127.0.0.1:{p}/v1/events", content=b'{"type":"x"}',
                           headers={"X-API-Key": key, "Content-Type": "application/json"},
                           timeout=120)
            assert r.status_code == 201, r.text
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            proc.wait(timeout=30)
    assert stored(db)[1] == list(range(1, 11))
    p = verify(db)
    assert p.returncode == 0, p.stderr


def _listen(socket_path: str, key: str, out: Any, n: int) -> None:
    """In another process: connect to the writer and report the first ``n`` notices."""
    async def run() -> None:
        feed = CommitFeed()
        got: list[tuple[str, int]] = []
        feed.listen(lambda notice: got.append((notice.tenant, notice.last_seq)))
        channel = RemoteChannel(socket_path, bytes.fromhex(key), feed)
        await channel.listen()
        out.send("ready")
        while len(got) < n:
            await asyncio.sleep(0.01)
        out.send(got[:n])
        await channel.close()

    asyncio.run(run())


def test_a_second_process_reads_the_commit_feed(multi: Any, tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    key = api_key(db)
    api_key(db, "globex")
    srv = multi(db)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    listener = ctx.Process(target=_listen, args=(srv.socket, srv.key, child, 6))
    listener.start()
    try:
        assert parent.poll(30) and parent.recv() == "ready"
        c = httpx.Client(base_url=srv.url, timeout=30)
        globex = api_key(db, "globex")
        for tenant_key, n in ((key, 3), (globex, 2), (key, 1), (key, 4), (globex, 1),
                              (key, 2)):
            r = c.post("/v1/events", content=orjson.dumps([{"type": "x"}] * n),
                       headers={"X-API-Key": tenant_key, "Content-Type": "application/json"})
            assert r.status_code == 201
        assert parent.poll(30)
        notices = parent.recv()
    finally:
        listener.join(timeout=30)
    assert notices == [("acme", 3), ("globex", 2), ("acme", 4), ("acme", 8), ("globex", 3),
                       ("acme", 10)]


def test_a_worker_process_writes_through_the_writer_and_sees_its_notice(
    multi: Any, tmp_path: Path,
) -> None:
    """The append protocol end to end: plain requests over the socket, a reply only after
    the commit, and the commit's notice already in this process's feed by then."""
    db = tmp_path / "p.db"
    api_key(db)
    srv = multi(db)

    async def run() -> None:
        feed = CommitFeed()
        channel = RemoteChannel(srv.socket, bytes.fromhex(srv.key), feed)
        now = format_us(now_us())
        events = [{"id": new_event_id(), "tenant": "acme", "timestamp": now,
                   "received_at": now, "type": "x", "severity": "info"} for _ in range(3)]
        conn = sqlite3.connect(db)
        paths = [p for (p,) in conn.execute("SELECT path FROM indexed_paths ORDER BY rowid")]
        conn.close()
        prepared = prepare(events, canonical=True, path_segments=segments(paths))
        appended = await channel.request(AppendRequest("acme", tuple(prepared)))
        assert [a.seq for a in appended] == [1, 2, 3]
        assert feed.watermark("acme") == 3
        await channel.close()

    asyncio.run(run())


def test_streams_on_every_worker_see_events_ingested_through_any_worker(
    multi: Any, tmp_path: Path,
) -> None:
    """Subscribers and producers spread over the workers by the kernel: each subscriber
    gets every event once, in order, whichever worker took it in."""
    from websockets.sync.client import connect

    db = tmp_path / "fan.db"
    key = api_key(db)
    srv = multi(db)
    url = srv.url.replace("http://", "ws://") + f"/v1/events/stream?token={key}"
    with contextlib.ExitStack() as stack:
        subs = [stack.enter_context(connect(url, open_timeout=30)) for _ in range(6)]
        for ws in subs:
            ws.send('{"type":"subscribe"}')
            assert orjson.loads(ws.recv(timeout=30))["type"] == "subscribed"
        producers = [httpx.Client(base_url=srv.url, headers={"X-API-Key": key}, timeout=30)
                     for _ in range(6)]
        for i in range(60):
            r = producers[i % 6].post("/v1/events", content=orjson.dumps(
                [{"type": "fan", "title": f"{i}-{j}"} for j in range(5)]))
            assert r.status_code == 201
        for c in producers:
            c.close()
        for ws in subs:
            seqs = []
            while len(seqs) < 300:
                msg = orjson.loads(ws.recv(timeout=30))
                if msg["type"] == "event":
                    seqs.append(msg["seq"])
            assert seqs == list(range(1, 301))


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_stops_the_server_while_a_server_sent_events_client_listens(
    multi: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int,
) -> None:
    """An SSE stream never ends by itself: the server cuts it after the grace period, and
    stops, instead of waiting for the client to leave (it waited forever)."""
    monkeypatch.setenv("AUDITSTREAM_SHUTDOWN_GRACE_SECONDS", "1")
    db = tmp_path / "sse.db"
    key = api_key(db)
    srv = multi(db, workers=workers)
    lines: list[str] = []
    ended = threading.Event()

    def listen() -> None:
        with contextlib.suppress(httpx.HTTPError), httpx.stream(
                "GET", srv.url + "/v1/events/stream", timeout=None,
                headers={"X-API-Key": key, "Accept": "text/event-stream"}) as r:
            for line in r.iter_lines():
                lines.append(line)
        ended.set()

    threading.Thread(target=listen, daemon=True).start()
    deadline = time.monotonic() + 30
    while not lines and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lines and lines[0].startswith(": subscribed"), lines
    srv.proc.send_signal(signal.SIGINT)
    try:
        srv.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("the server did not stop while an SSE client listened") from None
    assert ended.wait(10), "the SSE stream was not closed"
