"""The batcher sends in the background and on close, never twice, and never drops events
without raising (a real server; the network faults are injected in the HTTP transport)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest

from auditstream.client import AsyncClient, BatchError, Client, ClientError, Ingested
from conftest import free_port


def count(server: Any, key: str) -> int:
    with server.client(key) as c:
        return len(c.get("/v1/events", params={"limit": 1000}).json()["data"])


def wait_for(predicate: Any, what: str) -> None:
    """Poll until ``predicate()``; the deadline only bounds a failure, it measures nothing."""
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


class LoseAnswers(httpx.BaseTransport):
    """Forwards each request to the server, then loses the first ``n`` answers: the
    events are stored but the client cannot know it (the retry must not store twice)."""

    def __init__(self, n: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.lost = n
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        response = self.inner.handle_request(request)
        response.read()
        if self.lost:
            self.lost -= 1
            raise httpx.ReadError("connection reset before the answer", request=request)
        return response


def test_the_end_of_the_with_block_flushes(server: Any) -> None:
    key = server.key("acme")
    results: list[Ingested] = []
    with Client(server.url, api_key=key) as client, \
            client.batcher(max_events=1000, max_interval=3600,
                           on_ingested=results.extend) as batch:
        batch.extend({"type": "login", "title": f"e{i}"} for i in range(2500))
        assert batch.waiting > 0
    assert [r["seq"] for r in results] == list(range(1, 2501))
    assert batch.waiting == 0


def test_a_full_batch_goes_in_the_background(server: Any) -> None:
    key = server.key("acme")
    with Client(server.url, api_key=key) as client:
        batch = client.batcher(max_events=5, max_interval=3600)
        batch.extend({"type": "login"} for _ in range(5))
        wait_for(lambda: count(server, key) == 5, "the full batch sent without a flush")
        batch.add({"type": "logout"})  # not full, not due: waits for the close
        batch.close()
    assert count(server, key) == 6


def test_an_old_event_goes_after_max_interval(server: Any) -> None:
    key = server.key("acme")
    now = [0.0]
    with Client(server.url, api_key=key) as client:
        batch = client.batcher(max_events=100, max_interval=5.0)
        batch._clock = lambda: now[0]  # an injected clock: no test sleeps 5 s
        batch.add({"type": "login"})
        now[0] = 10.0
        batch.add({"type": "login"})  # the add that sees the oldest is due wakes the thread
        wait_for(lambda: count(server, key) == 2, "a due batch sent by the thread")
        batch.close()


def test_a_lost_answer_is_retried_without_storing_twice(server: Any) -> None:
    key = server.key("acme")
    transport = LoseAnswers(1)
    with Client(server.url, api_key=key, transport=transport) as client:
        batch = client.batcher(max_events=1000, max_interval=3600)
        batch.extend({"type": "login", "title": f"e{i}"} for i in range(10))
        with pytest.raises(BatchError) as failed:
            batch.flush()
        assert len(failed.value.events) == 10 and batch.waiting == 10
        assert isinstance(failed.value.__cause__, ClientError)
        batch.close()  # the same batch again: same bytes, same Idempotency-Key
    assert transport.calls == 2 and batch.waiting == 0
    assert count(server, key) == 10  # stored once, although sent twice


def test_a_refused_batch_is_raised_with_its_events(server: Any) -> None:
    key = server.key("acme")
    with Client(server.url, api_key=key) as client:
        batch = client.batcher(max_events=2, max_interval=3600)
        batch.add({"type": "login", "title": "good"})
        batch.add({"type": "login", "severity": "extreme"})  # full: sent, refused (400)
        wait_for(lambda: batch.waiting == 0, "the refused batch taken out")
        with pytest.raises(BatchError) as refused:
            batch.add({"type": "login", "title": "next"})
        assert [e.get("title") for e in refused.value.events] == ["good", None]
        assert refused.value.__cause__.status == 400  # type: ignore[union-attr]
        batch.add({"type": "login", "title": "next"})  # raised once; the batcher goes on
        batch.close()
    with server.client(key) as c:
        titles = [e["title"] for e in c.get("/v1/events").json()["data"]]
    assert titles == ["next"]


def test_close_raises_for_what_could_not_be_sent(server: Any) -> None:
    with Client(f"http://127.0.0.1:{free_port()}", api_key="k") as client:
        batch = client.batcher(max_events=1000, max_interval=3600, max_buffer=3)
        batch.extend([{"type": "a"}, {"type": "b"}, {"type": "c"}])
        with pytest.raises(BatchError, match="waiting"):
            batch.add({"type": "d"})  # bounded: the caller is told, not the memory
        with pytest.raises(BatchError) as unsent:
            batch.close()
        assert [e["type"] for e in unsent.value.events] == ["a", "b", "c"]
        with pytest.raises(ClientError, match="closed"):
            batch.add({"type": "e"})


def test_a_value_json_cannot_hold_fails_in_add(server: Any) -> None:
    with Client(server.url, api_key=server.key("acme")) as client, \
            client.batcher() as batch, pytest.raises(TypeError):
        batch.add({"type": "x", "payload": {"obj": object()}})


def test_threads_add_concurrently(server: Any) -> None:
    key = server.key("acme")
    with Client(server.url, api_key=key) as client, \
            client.batcher(max_events=50, max_interval=0.01) as batch:
        def produce(n: int) -> None:
            for i in range(100):
                batch.add({"id": f"t{n}-{i}", "type": "login"})
        threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    with server.client(key) as c:
        ids = [e["id"] for e in c.get("/v1/events", params={"limit": 1000}).json()["data"]]
    assert sorted(ids) == sorted(f"t{n}-{i}" for n in range(4) for i in range(100))


def test_async_batcher(server: Any) -> None:
    key = server.key("acme")
    results: list[Ingested] = []

    async def run() -> None:
        async with AsyncClient(server.url, api_key=key) as client:
            async with client.batcher(max_events=7, max_interval=3600,
                                      on_ingested=results.extend) as batch:
                batch.extend({"type": "login"} for _ in range(20))
            bad = client.batcher(max_events=10)
            bad.add({"type": "x", "severity": "extreme"})
            with pytest.raises(BatchError) as refused:
                await bad.close()
            assert len(refused.value.events) == 1

    asyncio.run(run())
    assert [r["seq"] for r in results] == list(range(1, 21))
