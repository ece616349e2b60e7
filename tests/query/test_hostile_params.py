"""Query parameters under attack, against a real server: every hostile value on every route
that takes it is a 400 problem document naming the parameter, never a 500.

The values are the ones that gave 500s in the issue #7 probes (huge or odd numbers in
times and durations, deep or long ``q``, a prefix ending in U+10FFFF, metrics over
non-numeric fields), plus their neighbours.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from conftest import Server

PROBLEM = "application/problem+json"
HUGE = "1" + "0" * 400

#: Every native route that takes the native filters (since, until, q, fields).
FILTER_ROUTES = ["/v1/events", "/v1/events/aggregate", "/v1/events/export",
                 "/v1/llm/events", "/v1/llm/usage"]

HOSTILE_TIMES = [
    "²", "١٢٣٤٥٦٧٨٩٠١٢", HUGE, "-" + HUGE, "1" * 5000, "9" * 19, "1e400", "NaN",
    "999999999999h", "99999999999999999999d", "1" * 5000 + "h", "366000d",
    "2026-13-45", "0000-01-01", "10000-01-01", "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00", "\x00",
]

HOSTILE_Q = [
    "(" * 400 + "a" + ")" * 400,
    "-" * 300 + "a",
    "NOT " * 300 + "a",
    " ".join(["a"] * 2000),
    " OR ".join(["type:a"] * 2000),
    " ".join(f"context.k{i}:1" for i in range(2000)),
    "type:" + ",".join(["a"] * 2000),
    "x" * 60_000,  # httpx refuses URLs above 64 KiB
    "since:999999999999h", "since:" + "1" * 3000, "until:²", "since:366000d",
    "timestamp:>=" + HUGE, "timestamp:" + HUGE, "received_at:<" + HUGE,
    "seq:>" + HUGE, "seq:>=99999999999999999999999", "seq:>abc", "seq:<1.5",
]


def client(server: Server) -> httpx.Client:
    """A client for a fresh tenant of its own, for cases that write."""
    return server.client(server.key(f"t{uuid.uuid4().hex[:12]}", "events:read",
                                    "events:write"))


@pytest.fixture(scope="module")
def reader(shared_server: Server) -> httpx.Client:
    """One client for the read-only cases (one key and connection, not one per case)."""
    return client(shared_server)


def assert_problem(r: httpx.Response, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == PROBLEM
    doc: dict[str, Any] = r.json()
    assert doc["status"] == 400
    if field is not None:
        assert field in {e["field"] for e in doc.get("errors", [])} or field == "q", doc
    return doc


@pytest.mark.parametrize("value", HOSTILE_TIMES, ids=lambda v: repr(v)[:24])
@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize("route", FILTER_ROUTES)
def test_hostile_time_parameters(reader: httpx.Client, route: str, name: str,
                                 value: str) -> None:
    r = reader.get(route, params={name: value})
    assert_problem(r, name)


@pytest.mark.parametrize("value", HOSTILE_Q, ids=lambda v: repr(v)[:24])
@pytest.mark.parametrize("route", FILTER_ROUTES)
def test_hostile_q(reader: httpx.Client, route: str, value: str) -> None:
    doc = assert_problem(reader.get(route, params={"q": value}))
    assert doc["title"] == "Query syntax error"
    assert isinstance(doc["position"], int) and 0 <= doc["position"] <= len(value)


@pytest.mark.parametrize("route", FILTER_ROUTES)
def test_prefix_ending_in_the_last_code_point(shared_server: Server, route: str) -> None:
    c = client(shared_server)
    c.post("/v1/events", content=orjson.dumps(
        [{"type": "abc\U0010ffff", "llm": {"model": "m"}},
         {"type": "abc\U0010ffffz", "llm": {"model": "m"}}, {"type": "abd"}]))
    r = c.get(route, params={"q": "type:abc\U0010ffff*"})
    assert r.status_code == 200, r.text[:300]
    if route in ("/v1/events", "/v1/llm/events"):
        assert {e["type"] for e in r.json()["data"]} == {"abc\U0010ffff", "abc\U0010ffffz"}


@pytest.mark.parametrize("params", [
    [(f"context.k{i}", "1") for i in range(600)],
    [("type", ",".join(str(i) for i in range(5000)))],
    [("q", "a " * 200)] * 3,
], ids=["600 params", "5000 values", "3 q of 200 terms"])
@pytest.mark.parametrize("route", FILTER_ROUTES)
def test_filters_too_large_for_sqlite(reader: httpx.Client, route: str,
                                      params: list[tuple[str, str]]) -> None:
    doc = assert_problem(reader.get(route, params=params), "(filter)")
    assert "too large" in doc["detail"]


@pytest.mark.parametrize("value", ["²", HUGE, "999999999999h", "99999999999999999999d",
                                   "1" * 5000 + "h", "366000d", "-1h", ""])
def test_hostile_stats_period(reader: httpx.Client, value: str) -> None:
    assert_problem(reader.get("/v1/stats/summary", params={"period": value}), "period")


@pytest.fixture(scope="module")
def with_data(shared_server: Server) -> httpx.Client:
    c = client(shared_server)
    # Data to aggregate over: the sum of two timestamps in microseconds overflows int64.
    r = c.post("/v1/events", content=orjson.dumps(
        [{"type": "a", "timestamp": "9000-01-01T00:00:00Z", "title": "x"},
         {"type": "b", "timestamp": "9000-01-01T00:00:00Z", "title": "y"}]))
    assert r.status_code == 201
    return c


@pytest.mark.parametrize("path", ["timestamp", "received_at", "seq", "type", "title", "id",
                                  "severity", "category", "description", "tags"])
@pytest.mark.parametrize("fn", ["sum", "avg", "min", "max", "p50", "p95", "p99"])
def test_metrics_take_numeric_paths_only(with_data: httpx.Client, fn: str, path: str) -> None:
    doc = assert_problem(with_data.get("/v1/events/aggregate", params={fn: path}), fn)
    assert "not numeric" in doc["errors"][0]["reason"] or path == "tags"


def test_metrics_on_dotted_paths_still_work(shared_server: Server) -> None:
    c = client(shared_server)
    c.post("/v1/events", content=orjson.dumps(
        [{"type": "a", "context": {"ms": 5}}, {"type": "a", "context": {"ms": 7}}]))
    r = c.get("/v1/events/aggregate", params={"sum": "context.ms", "p50": "context.ms"})
    assert r.status_code == 200
    assert r.json()["buckets"][0]["rows"][0]["metrics"]["context.ms"] == {"sum": 12, "p50": 5}


@pytest.mark.parametrize("value", ["\x00abc", "a\x00b", '"x\x00y"', "\x00\\ORtrue"])
@pytest.mark.parametrize("route", FILTER_ROUTES)
def test_nul_in_free_text_is_not_a_500(reader: httpx.Client, route: str, value: str) -> None:
    assert reader.get(route, params={"q": value}).status_code == 200
