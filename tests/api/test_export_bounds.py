"""The export's two bounds: memory per export does not grow with the size of the events
(batches are counted in bytes, not events), and only ``max_exports`` exports stream at once
(more get 503 with ``Retry-After``), so parallel exports cannot add up without limit."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from auditstream.app import create_app
from auditstream.export import BATCH_BYTES, MAX_BATCH, scan_batches
from auditstream.query.filter import All
from auditstream.settings import Settings
from auditstream.store.sqlite import SQLiteEventStore

#: ~50 KB events: 1,000 of them (the old batch) would be 50 MB of JSON in memory at once.
BIG = {"type": "bulk.report", "payload": {"lines": ["x" * 100 + str(i) for i in range(500)]}}


async def fill(store: SQLiteEventStore, tenant: str, events: list[dict[str, Any]]) -> None:
    from auditstream.ingest.pipeline import normalise
    from auditstream.model.times import now_us

    for s in range(0, len(events), 100):
        batch, client_ids = normalise(events[s:s + 100], tenant=tenant, received_us=now_us())
        await store.append(tenant, batch, client_ids=client_ids)


def test_batches_are_bounded_in_bytes_and_complete(db_path: Path) -> None:
    async def run() -> None:
        store = SQLiteEventStore(db_path)
        try:
            await fill(store, "acme", [dict(BIG, title=f"big {i}") for i in range(120)]
                       + [{"type": "small", "title": f"small {i}"} for i in range(3000)])
            seen: list[int] = []
            sizes = []
            async for batch in scan_batches(store, "acme", All(), after_seq=0):
                seen += [e["seq"] for e in batch]
                sizes.append((len(batch), sum(len(orjson.dumps(e)) for e in batch)))
            assert seen == list(range(1, 3121))  # every event once, in seq order
            heavy = len(orjson.dumps(dict(BIG, title="big 100")))
            # No batch holds much more than the budget (one event may exceed it alone)...
            assert all(n == 1 or b <= BATCH_BYTES + heavy for n, b in sizes), sizes
            # ...and small events still travel in large batches.
            assert max(n for n, _ in sizes) == MAX_BATCH
            # limit and after_seq are honoured.
            got = [e["seq"] async for b in scan_batches(store, "acme", All(), after_seq=100,
                                                        limit=250) for e in b]
            assert got == list(range(101, 351))
        finally:
            await store.close()

    asyncio.run(run())


def test_export_memory_does_not_grow_with_event_size(make_server: Any) -> None:
    """Python-level peak while streaming 200 × 50 KB events over HTTP, traced in-process:
    the server must hold about one byte-bounded batch, not the whole result."""
    server = make_server()
    c = server.client(server.key("acme"))
    for s in range(0, 200, 50):
        r = c.post("/v1/events", content=orjson.dumps([dict(BIG, title=f"b{i}")
                                                       for i in range(s, s + 50)]))
        assert r.status_code == 201, r.text
    total = 0
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with c.stream("GET", "/v1/events/export", params={"format": "csv"}) as r:
            assert r.status_code == 200
            for chunk in r.iter_raw():
                total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > 200 * 50_000
    # 10 MB of events: before the bound the server parsed all 200 at once (97 MB peak;
    # 4.9 MB with it).
    assert peak < 16 * BATCH_BYTES, peak


def test_exports_beyond_the_limit_get_503_with_retry_after(db_path: Path) -> None:
    """Driven as ASGI with a client that stops reading, so the first export holds its slot
    for as long as the test wants (over TCP, socket buffers would decide)."""
    app = create_app(Settings(db=str(db_path), demo=False, max_exports=2))

    async def run() -> None:
        async with app.router.lifespan_context(app):
            await exports(app)

    asyncio.run(run())


async def exports(app: Any) -> None:
    svc = app.state.services
    svc.catalog.create_tenant("acme")
    svc.catalog.create_tenant("globex")
    keys = {t: svc.catalog.create_key(t, ["events:read", "events:write"]).secret
            for t in ("acme", "globex")}
    await fill(svc.store, "acme", [{"type": "a"}] * 50)
    await fill(svc.store, "globex", [{"type": "a"}] * 50)
    stalled = asyncio.Event()
    release = asyncio.Event()

    async def stalling_export(tenant: str) -> None:
        async def receive() -> dict[str, Any]:
            await release.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                stalled.set()
                await release.wait()  # a client that stopped reading

        await app(scope(keys[tenant]), receive, send)

    async def export(tenant: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as ac:
            return await ac.get("/v1/events/export", headers={"X-API-Key": keys[tenant]})

    first = asyncio.create_task(stalling_export("acme"))
    await stalled.wait()
    # One tenant may hold at most half of the slots: acme's second export waits.
    r = await export("acme")
    assert r.status_code == 503 and r.headers["retry-after"].isdigit(), r.text
    assert r.headers["content-type"] == "application/problem+json"
    # Another tenant still gets the remaining slot.
    stalled.clear()
    second = asyncio.create_task(stalling_export("globex"))
    await stalled.wait()
    r = await export("globex")
    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
    release.set()
    await asyncio.gather(first, second)
    # Finished (or abandoned) exports give their slots back.
    assert (await export("acme")).status_code == 200
    assert (await export("globex")).status_code == 200


def scope(key: str | None) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": "/v1/events/export",
            "raw_path": b"/v1/events/export", "query_string": b"format=csv",
            "root_path": "", "headers": [(b"host", b"t"), (b"x-api-key", (key or "").encode())],
            "client": ("127.0.0.1", 1), "server": ("t", 80)}


@pytest.mark.parametrize("setting", ["0", "-1"])
def test_max_exports_must_be_positive(db_path: Path, setting: str) -> None:
    with pytest.raises(ValueError, match="AUDITSTREAM_MAX_EXPORTS"):
        create_app(Settings.from_env({"AUDITSTREAM_MAX_EXPORTS": setting}, db=str(db_path),
                                     demo=False))
