"""Read answers built without parsing each event: list and get splice the stored JSON,
aggregates are rendered from flat rows. Each must say exactly what the parsed path says."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditstream.api.native.events import render_buckets, render_counts
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us
from auditstream.query.filter import All, Cmp
from auditstream.store.base import AggregateSpec, EventQuery
from auditstream.store.sqlite import SQLiteEventStore
from conftest import Server

#: What JSON encoders disagree on: escapes, non-ASCII, line separators, numbers.
TRICKY: list[dict[str, Any]] = [
    {"type": "login", "title": 'quote " backslash \\ tab \t nul-ish \u0001 del \u007f',
     "description": "caf\u00e9 \u2603 \U0001f600 \u2028 \u2029 </script>"},
    {"type": "llm.call", "llm": {"model": "m", "cost_usd": 0.1, "input_tokens": 2**53 - 1,
                                 "latency_ms": 1e21}, "metadata": {"neg": -0.5, "z": 0,
                                                                   "small": 1e-7}},
    {"type": "install", "subject": {"ecosystem": "npm", "package": "left-pad"},
     "tags": ["a", "b"], "payload": {"nested": {"deep": [1, {"x": None}, True, False]}}},
    {"type": "user.created", "actor": {"id": "u1", "name": "\u00c5sa \u00d8stergaard"},
     "severity": "high", "outcome": "success", "category": "user"},
]


def _ingest(c: Any) -> list[str]:
    r = c.post("/v1/events", content=orjson.dumps(TRICKY))
    assert r.status_code == 201, r.text
    return [d["id"] for d in r.json()["data"]]


@pytest.mark.parametrize("integrity", [True, False], ids=["canonical", "plain"])
def test_list_and_get_answer_the_stored_events(make_server: Any, integrity: bool) -> None:
    server: Server = make_server(integrity=integrity)
    c = server.client(server.key("acme"))
    ids = _ingest(c)
    page = c.get("/v1/events", params={"order": "asc", "limit": 2, "include_total": "true"})
    assert page.headers["content-type"] == "application/json"
    doc = page.json()
    assert list(doc) == ["data", "next_cursor", "has_more", "total"]
    assert doc["has_more"] is True and doc["total"] == 4
    assert 'rel="next"' in page.headers["link"]
    rest = c.get("/v1/events", params={"order": "asc", "limit": 2,
                                       "cursor": doc["next_cursor"]}).json()
    assert list(rest) == ["data", "next_cursor", "has_more"]
    assert rest["next_cursor"] is None and rest["has_more"] is False
    listed = doc["data"] + rest["data"]
    assert [e["id"] for e in listed] == ids
    for sent, got in zip(TRICKY, listed, strict=True):
        assert {k: got[k] for k in sent} == sent
        assert got["tenant"] == "acme" and isinstance(got["seq"], int)
        one = c.get(f"/v1/events/{got['id']}")
        assert one.headers["content-type"] == "application/json"
        assert one.json() == got
        if integrity:  # ?include=proof takes the parsed path: the same event plus a proof
            proved = c.get(f"/v1/events/{got['id']}", params={"include": "proof"}).json()
            assert proved.pop("proof") and proved == got
    assert c.get("/v1/events/evt_nope").status_code == 404
    assert c.get(f"/v1/events/{ids[0]}", params={"include": "x"}).status_code == 400
    assert c.get("/v1/events", params={"limit": 1, "type": "nope"}).json() == {
        "data": [], "next_cursor": None, "has_more": False}
    llm = c.get("/v1/llm/events").json()
    assert [e["id"] for e in llm["data"]] == [ids[1]] and llm["data"][0] == listed[1]


def test_a_redacted_event_is_answered_as_its_stub(server: Server) -> None:
    c = server.client(server.key("acme"))
    ids = _ingest(c)
    admin = server.client(server.key("acme", "admin", "events:read"))
    stub = admin.post(f"/v1/events/{ids[0]}/redact", json={"reason": "erasure"}).json()
    assert c.get(f"/v1/events/{ids[0]}").json() == stub
    listed = c.get("/v1/events", params={"order": "asc"}).json()["data"]
    assert listed[0] == stub and "title" not in listed[0]


T0 = 1_780_000_000_000_000
HOUR = 3_600_000_000


def test_count_answers_render_as_the_row_objects_do(tmp_path: Path) -> None:
    """``render_counts`` of flat rows == ``render_buckets`` of ``aggregate``'s buckets, for
    every shape: with and without interval, group, an empty answer."""

    async def run() -> list[tuple[Any, Any]]:
        store = SQLiteEventStore(tmp_path / "a.db")
        try:
            await store.append("a", [
                {"id": new_event_id(), "tenant": "a", "type": t, "severity": s,
                 "timestamp": format_us(T0 + i * HOUR // 2), "received_at": format_us(T0),
                 **({"outcome": "ok"} if i % 3 else {})}
                for i, (t, s) in enumerate([("x", "info"), ("y", "high"), ("x", "low")] * 9)])
            out = []
            for where in (All(), Cmp("timestamp", ">=", T0 + 3 * HOUR), Cmp("seq", ">", 99)):
                for group in (None, "type", "severity", "outcome", "context.nope"):
                    for interval in (None, "hour", "day"):
                        spec = AggregateSpec(group_by=group, interval=interval)  # type: ignore[arg-type]
                        out.append((render_counts(await store.aggregate_counts("a", where, spec),
                                                  spec),
                                    render_buckets(await store.aggregate("a", where, spec),
                                                   spec)))
            return out
        finally:
            await store.close()

    pairs = asyncio.run(run())
    assert all(orjson.dumps(a) == orjson.dumps(b) for a, b in pairs)
    assert any(a == [{"rows": []}] for a, _ in pairs)  # the empty answer without interval
    assert any(a == [] for a, _ in pairs)  # … and with one


def test_query_raw_is_query(tmp_path: Path) -> None:
    """The interface's default (parse, re-encode) and SQLite's stored bytes agree."""

    async def run() -> None:
        store = SQLiteEventStore(tmp_path / "b.db")
        try:
            evs = [{"id": new_event_id(), "tenant": "a", "received_at": format_us(T0),
                    "timestamp": format_us(T0), "severity": "info", **e} for e in TRICKY]
            await store.append("a", evs)
            q = EventQuery(filter=All(), limit=3, include_total=True)
            raw, page = await store.query_raw("a", q), await store.query("a", q)
            assert [orjson.loads(b) for b in raw.events] == page.events
            assert (raw.next_cursor, raw.has_more, raw.total) == (
                page.next_cursor, page.has_more, page.total)
            base = await super(SQLiteEventStore, store).query_raw("a", q)
            assert [orjson.loads(b) for b in base.events] == page.events
            got = await store.get_raw("a", evs[0]["id"])
            assert got is not None and orjson.loads(got) == await store.get("a", evs[0]["id"])
            assert await store.get_raw("a", "evt_nope") is None
        finally:
            await store.close()

    asyncio.run(run())


def test_an_hourly_aggregate_counts_a_late_event_for_a_closed_hour(server: Server) -> None:
    """Whole hours are kept between requests; an event stamped in an hour closed long ago
    still shows in the next answer (the cache follows seq, not the clock)."""
    c = server.client(server.key("acme"))
    old = "2026-01-05T10:20:00Z"
    assert c.post("/v1/events", content=orjson.dumps(
        [{"type": "login", "timestamp": old}, {"type": "login"}])).status_code == 201
    params = {"group_by": "type", "interval": "hour", "since": "2026-01-01"}
    first = c.get("/v1/events/aggregate", params=params).json()["buckets"]
    assert first[0] == {"ts": "2026-01-05T10:00:00Z", "rows": [{"key": "login", "count": 1}]}
    assert c.get("/v1/events/aggregate", params=params).json()["buckets"] == first
    assert c.post("/v1/events", content=orjson.dumps(
        {"type": "logout", "timestamp": old})).status_code == 201
    again = c.get("/v1/events/aggregate", params=params).json()["buckets"]
    assert again[0] == {"ts": "2026-01-05T10:00:00Z", "rows": [
        {"key": "login", "count": 1}, {"key": "logout", "count": 1}]}
    assert again[1:] == first[1:]
