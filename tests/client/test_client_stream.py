"""``Client.stream`` / ``AsyncClient.stream`` over real sockets against the real server:
exactly once while ingest runs, resume, filters, close codes, backoff and dead
connections (clock and sleep injected: no test waits for a delay to pass), proofs, and a
server killed and restarted mid-stream while a producer keeps ingesting."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect as ws_connect

from auditstream.client import (
    AsyncClient,
    Client,
    ClientError,
    Event,
    StreamAuthError,
    StreamError,
)
from auditstream.client.stream import stream_url
from conftest import free_port
from test_server import api_key, wait_up


class Stop(Exception):
    """Raised by an injected ``sleep`` to end a stream that would otherwise reconnect."""


def recorder(delays: list[float], stop_after: int | None = None,
             then: Callable[[], None] | None = None) -> Callable[[float], None]:
    """A ``sleep`` that records each delay instead of sleeping; ``then`` runs on each."""
    def sleep(delay: float) -> None:
        delays.append(delay)
        if then is not None:
            then()
        if stop_after is not None and len(delays) >= stop_after:
            raise Stop
    return sleep


class Consumer(threading.Thread):
    """Reads a stream in a thread until it has ``want`` events, or the one with id
    ``until_id`` (or the stream raises)."""

    def __init__(self, events: Iterator[Event], want: int, until_id: str | None = None
                 ) -> None:
        super().__init__(daemon=True)
        self.it, self.want, self.until_id = events, want, until_id
        self.seen: list[Event] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for event in self.it:
                self.seen.append(event)
                if len(self.seen) >= self.want or event["id"] == self.until_id:
                    break
        except BaseException as exc:  # noqa: BLE001 (handed to the test)
            self.error = exc

    def result(self, timeout: float = 60) -> list[Event]:
        self.join(timeout)
        assert not self.is_alive(), f"only {len(self.seen)} of {self.want} events arrived"
        if self.error is not None:
            raise self.error
        return self.seen


def test_events_ingested_while_streaming_arrive_exactly_once(server: Any) -> None:
    key = server.key("acme")
    with Client(server.url, api_key=key) as client:
        consumer = Consumer(client.stream(resume_from=0), 60)
        consumer.start()
        for i in range(12):
            client.ingest([{"type": "login", "title": f"{i}-{j}"} for j in range(5)])
        seen = consumer.result()
    assert [e["seq"] for e in seen] == list(range(1, 61))
    assert seen[0]["tenant"] == "acme" and seen[0]["title"] == "0-0"


def test_resume_from_a_seq_or_an_id_and_filters(server: Any) -> None:
    key = server.key("acme")
    with Client(server.url, api_key=key) as client:
        acked = client.ingest([{"type": "login" if i % 2 else "logout", "title": str(i),
                                "actor": {"id": f"u{i % 3}"}} for i in range(20)])
        after_seq = Consumer(client.stream(resume_from=15), 5)
        after_id = Consumer(client.stream(resume_from=acked[9]["id"]), 10)
        logins = Consumer(client.stream(resume_from=0, type="login"), 10)
        dotted = Consumer(client.stream({"actor.id": "u1"}, q="type:login", resume_from=0), 3)
        for c in (after_seq, after_id, logins, dotted):
            c.start()
        assert [e["seq"] for e in after_seq.result()] == [16, 17, 18, 19, 20]
        assert [e["seq"] for e in after_id.result()] == list(range(11, 21))
        assert {e["type"] for e in logins.result()} == {"login"}
        assert all(e["actor"]["id"] == "u1" and e["type"] == "login" for e in dotted.result())


def test_a_stream_without_resume_starts_with_new_events(server: Any) -> None:
    key = server.key("acme")
    with Client(server.url, api_key=key) as client:
        client.ingest([{"type": "old"}] * 3)
        consumer = Consumer(client.stream(), 1)
        consumer.start()
        # Until it has subscribed, an event may fall before its start: keep sending one
        # until the consumer has it; it must never see the old ones.
        deadline = time.monotonic() + 30
        while consumer.is_alive() and time.monotonic() < deadline:
            client.ingest({"type": "new"})
            consumer.join(0.05)
        assert [e["type"] for e in consumer.result()] == ["new"]


def test_an_invalid_filter_is_raised_not_retried(server: Any) -> None:
    with Client(server.url, api_key=server.key("acme")) as client:
        with pytest.raises(StreamError) as bad:
            next(client.stream(filters={"no such field": "x"}, sleep=recorder([], 1)))
        assert bad.value.code == "invalid_filter"
        with pytest.raises(StreamError) as bad_q:
            next(client.stream(q="severity:>=nonsense ((", sleep=recorder([], 1)))
        assert bad_q.value.code == "invalid_filter"
        with pytest.raises(StreamError) as unknown:
            next(client.stream(resume_from="evt_nothing_like_it", sleep=recorder([], 1)))
        assert unknown.value.code == "not_found"


def test_a_bad_or_unscoped_credential_is_fatal(server: Any) -> None:
    with Client(server.url, api_key="sk_live_nope") as client, \
            pytest.raises(StreamAuthError) as bad:
        next(client.stream(sleep=recorder([], 1)))
    assert bad.value.code == 4401
    writer = server.key("acme", "events:write")
    with Client(server.url, api_key=writer) as client, pytest.raises(StreamAuthError) as no:
        next(client.stream(sleep=recorder([], 1)))
    assert no.value.code == 4403


def test_too_many_streams_backs_off_and_retries(server: Any) -> None:
    key = server.key("acme")
    url = stream_url(server.url)
    held = []
    for _ in range(10):  # AUDITSTREAM_STREAM_MAX_CONNECTIONS_PER_KEY
        ws = ws_connect(url + f"?token={key}", legacy=True)
        ws.send('{"type": "subscribe"}')
        assert ws.recv(timeout=10)
        held.append(ws)
    delays: list[float] = []
    reasons: list[str] = []

    def free_one() -> None:
        if held:
            held.pop().close()

    with Client(server.url, api_key=key) as client:
        client.ingest({"type": "login"})
        stream = client.stream(resume_from=0, sleep=recorder(delays, 5, then=free_one),
                               on_reconnect=lambda d, why: reasons.append(why))
        assert next(stream)["seq"] == 1
        stream.close()
    # Closing a held stream frees its slot once the server has seen the close: an attempt
    # may still find all ten taken, and back off once more.
    assert delays[0] == 1.0 and all("4429" in why for why in reasons)
    for ws in held:
        ws.close()


def test_the_backoff_schedule_when_the_server_is_down() -> None:
    delays: list[float] = []
    with Client(f"http://127.0.0.1:{free_port()}", api_key="k") as client, \
            pytest.raises(Stop):
        next(client.stream(sleep=recorder(delays, 9)))
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30, 30]


def test_the_async_backoff_schedule_and_resume_after_a_dead_connection(server: Any) -> None:
    key = server.key("acme")
    delays: list[float] = []

    async def record(delay: float) -> None:
        delays.append(delay)
        if len(delays) >= 7:
            raise Stop

    async def down() -> None:
        async with AsyncClient(f"http://127.0.0.1:{free_port()}", api_key="k") as client:
            await anext(client.stream(sleep=record))

    with pytest.raises(Stop):
        asyncio.run(down())
    assert delays == [1, 2, 4, 8, 16, 30, 30]

    now, jumps = [0.0], [False]

    def clock() -> float:
        if jumps[0]:
            now[0] += 61.0
        return now[0]

    async def after_silence() -> list[int]:
        async def sleep(delay: float) -> None:
            jumps[0] = False
            await client.ingest({"type": "while away"})
        async with AsyncClient(server.url, api_key=key) as client:
            await client.ingest({"type": "first"})
            seqs = []
            async for event in client.stream(resume_from=0, clock=clock, sleep=sleep):
                seqs.append(event["seq"])
                jumps[0] = True  # then a silent minute: dead, reconnect, resume after 1
                if len(seqs) == 2:
                    break
            return seqs

    assert asyncio.run(after_silence()) == [1, 2]


def test_sixty_silent_seconds_mean_a_dead_connection(server: Any) -> None:
    key = server.key("acme")
    now = [0.0]
    jumps = [True]

    def clock() -> float:
        if jumps[0]:
            now[0] += 61.0  # every reading is a minute later: silence, as far as it knows
        return now[0]

    def sleep(delay: float) -> None:
        delays.append(delay)
        jumps[0] = False  # the next connection lives in ordinary time

    delays: list[float] = []
    reasons: list[str] = []
    with Client(server.url, api_key=key) as client:
        client.ingest({"type": "login"})
        stream = client.stream(resume_from=0, clock=clock, sleep=sleep,
                               on_reconnect=lambda d, why: reasons.append(why))
        assert next(stream)["seq"] == 1
        stream.close()
    assert delays == [1.0] and "DeadConnection" in reasons[0]


def test_a_reconnection_before_the_first_event_resumes_where_it_subscribed(
        server: Any) -> None:
    """Without ``resume_from`` the stream starts at the newest event; a connection lost
    before any event must resume from that start, not from whatever is newest later."""
    key = server.key("acme")
    calls = [0]
    now = [0.0]

    def clock() -> float:
        # Readings 1-3: connected, waiting, "subscribed" received. The 4th is a minute
        # later: the connection is dead before any event came.
        calls[0] += 1
        if calls[0] == 4:
            now[0] += 61.0
        return now[0]

    def sleep(delay: float) -> None:  # the outage: events committed meanwhile
        client.ingest([{"type": "during", "title": str(i)} for i in range(3)])

    with Client(server.url, api_key=key) as client:
        client.ingest({"type": "before"})
        consumer = Consumer(client.stream(clock=clock, sleep=sleep), 3)
        consumer.start()
        assert [e["title"] for e in consumer.result()] == ["0", "1", "2"]


def test_a_revoked_key_ends_the_stream(server: Any) -> None:
    server.key("acme")  # makes the tenant
    key = server.catalog.create_key("acme")
    with Client(server.url, api_key=key.secret) as client:
        client.ingest({"type": "login"})
        stream = client.stream(resume_from=0, sleep=recorder([], 1))
        assert next(stream)["seq"] == 1
        server.catalog.revoke_key(key.id)
        with pytest.raises(StreamAuthError) as revoked:
            next(stream)  # the server closes a revoked key's streams within 5 s
    assert revoked.value.code == 4401


def test_a_proof_carrying_stream_refuses_an_altered_event(server: Any) -> None:
    from auditstream.client import ProofError
    from auditstream.dbapi import sqlite3

    key = server.key("acme")
    with Client(server.url, api_key=key) as plain:
        public = plain.public_key()
        plain.ingest([{"type": "login", "title": str(i)} for i in range(3)])
    conn = sqlite3.connect(server.settings.db)
    conn.execute("UPDATE events SET body = replace(body, '\"title\":\"1\"', "
                 "'\"title\":\"one\"') WHERE tenant = 'acme' AND seq = 2")
    conn.commit()
    conn.close()
    with Client(server.url, api_key=key, public_key=public) as client:
        stream = client.stream(resume_from=0, verify=True, sleep=recorder([], 1))
        assert next(stream)["seq"] == 1
        with pytest.raises(ProofError, match="altered"):
            next(stream)


def test_a_proof_carrying_stream_verifies_each_event(server: Any, tmp_path: Path) -> None:
    key = server.key("acme")
    state = tmp_path / "monitor.json"
    with Client(server.url, api_key=key) as plain:
        public = plain.public_key()
        plain.ingest([{"type": "login", "title": str(i)} for i in range(5)])
    with Client(server.url, api_key=key, public_key=public, state=state) as client:
        consumer = Consumer(client.stream(resume_from=0, verify=True), 15)
        consumer.start()
        for _i in range(5):
            client.ingest([{"type": "logout"}] * 2)
        assert [e["seq"] for e in consumer.result()] == list(range(1, 16))
    assert state.exists() and client.monitor.kept is not None
    assert client.monitor.kept.size >= 15


def test_async_stream(server: Any) -> None:
    key = server.key("acme")

    async def run() -> list[int]:
        async with AsyncClient(server.url, api_key=key) as client:
            await client.ingest([{"type": "login"}] * 3)
            seen: list[int] = []
            async for event in client.stream(resume_from=1):
                seen.append(event["seq"])
                if len(seen) == 2:
                    await client.ingest({"type": "logout"})
                if len(seen) == 3:
                    break
            with pytest.raises(StreamAuthError):
                async with AsyncClient(server.url, api_key="sk_live_nope") as bad:
                    await anext(bad.stream())
            return seen

    assert asyncio.run(run()) == [2, 3, 4]


# -- a real server process, killed and restarted mid-stream ----------------------------


def serve(db: Path, port: int) -> subprocess.Popen[bytes]:
    with open(db.with_suffix(".log"), "ab") as log:  # a file: a pipe nobody reads fills up
        proc = subprocess.Popen(
            [sys.executable, "-m", "auditstream", "serve", "--db", str(db), "--port",
             str(port), "--no-demo"], stdout=log, stderr=log, start_new_session=True)
    wait_up(f"http://127.0.0.1:{port}", proc)
    return proc


def kill(proc: subprocess.Popen[bytes]) -> None:
    """kill -9 the supervisor, its writer and its workers at once."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_a_server_killed_and_restarted_mid_stream_loses_and_repeats_nothing(
        tmp_path: Path) -> None:
    """A producer ingests without pause (retrying what fails, under its own ids) before,
    during and after a kill -9 of the whole server; the consumer must see each event
    once, in seq order, and the last one (``end``) only after all the others."""
    db, port = tmp_path / "restart.db", free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve(db, port)
    try:
        key = api_key(db)
        reasons: list[str] = []
        produced, failures = [0], [0]
        stop = threading.Event()

        def fast(delay: float) -> None:
            time.sleep(min(delay, 0.1))  # the schedule itself is tested above

        def ingest(client: Client, batch: list[dict[str, Any]]) -> None:
            # Client-chosen ids: the retry of a batch whose answer was lost is a no-op.
            while True:
                try:
                    client.ingest(batch)
                    return
                except ClientError:
                    failures[0] += 1
                    time.sleep(0.05)

        def produce() -> None:
            with Client(url, api_key=key, timeout=5) as client:
                while not stop.is_set():
                    n = produced[0]
                    ingest(client, [{"id": f"r{i}", "type": "load", "title": str(i)}
                                    for i in range(n, n + 5)])
                    produced[0] = n + 5
                ingest(client, [{"id": "end", "type": "load"}])

        with Client(url, api_key=key) as reader:
            consumer = Consumer(reader.stream(resume_from=0, sleep=fast,
                                              on_reconnect=lambda d, why: reasons.append(why)),
                                10**9, until_id="end")
            consumer.start()
            producer = threading.Thread(target=produce, daemon=True)
            producer.start()

            def wait(condition: Callable[[], bool]) -> None:
                deadline = time.monotonic() + 60
                while not condition():
                    assert time.monotonic() < deadline and producer.is_alive()
                    time.sleep(0.01)

            wait(lambda: produced[0] >= 100 and len(consumer.seen) >= 50)
            at_kill = len(consumer.seen)
            kill(proc)
            proc = serve(db, port)
            restarted = produced[0]
            wait(lambda: produced[0] >= restarted + 100)
            stop.set()
            producer.join(60)
            assert not producer.is_alive()
            seen = consumer.result(120)
    finally:
        if proc.poll() is None:
            kill(proc)
    total = produced[0]
    # Mid-stream: the consumer had some events, not all; the producer's requests failed
    # while the server was down, and at least 100 events went in after the restart.
    assert 0 < at_kill < total and failures[0] > 0
    assert reasons, "the consumer never noticed the restart"
    ids = [e["id"] for e in seen]
    assert ids[-1] == "end" and len(ids) == len(set(ids)) == total + 1  # every one, once
    assert set(ids) == {f"r{i}" for i in range(total)} | {"end"}
    assert [e["seq"] for e in seen] == list(range(1, total + 2))  # in order, no gap


def test_a_reconnect_wait_ends_on_a_ctrl_c_that_another_thread_caught() -> None:
    """``sleep_awake``, the default ``sleep`` between reconnects: Python runs a signal's
    handler in the main thread only, so one that another thread caught must not wait out a
    30 s backoff."""
    script = (
        "import signal, threading, time\n"
        "from auditstream.client.stream import sleep_awake\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), signal.pthread_kill("
        "threading.get_ident(), signal.SIGINT))).start()\n"
        "try:\n"
        "    sleep_awake(3600)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout == "interrupted\n", done.stderr
