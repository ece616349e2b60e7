"""``/v1/llm/events`` and ``/v1/llm/usage``, including OpenTelemetry GenAI names at ingest."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

MODELS = {"gpt-4o": "openai", "gpt-4o-mini": "openai", "claude-sonnet": "anthropic"}


def day(offset: int, hour: int = 12) -> str:
    d = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return (d - timedelta(days=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def calls() -> list[dict[str, Any]]:
    """60 calls over 3 days; every third one in OpenTelemetry GenAI spelling."""
    out = []
    for i in range(60):
        model = list(MODELS)[i % 3]
        ev: dict[str, Any] = {"type": "llm.call", "timestamp": day(i % 3, hour=1 + i % 20)}
        if i % 3 == 2:
            ev["type"] = "gen_ai.chat"  # another type name: still an LLM call
            ev["llm"] = {"gen_ai.provider.name": MODELS[model], "gen_ai.request.model": model,
                         "gen_ai.usage.input_tokens": 100 + i,
                         "gen_ai.usage.output_tokens": 10 + i,
                         "latency_ms": float(200 + 10 * i), "cost_usd": 0.001 * (i + 1)}
        else:
            ev["llm"] = {"provider": MODELS[model], "model": model, "input_tokens": 100 + i,
                         "output_tokens": 10 + i, "latency_ms": float(200 + 10 * i),
                         "cost_usd": 0.001 * (i + 1)}
        out.append(ev)
    return out


@pytest.fixture
def llm(server: Any) -> tuple[Any, list[dict[str, Any]]]:
    client = server.client(server.key("acme"))
    events = calls() + [
        {"type": "user.login", "timestamp": day(0)},  # not an LLM call
        {"type": "llm.call", "timestamp": day(0)},  # no model or provider: not counted
        {"type": "llm.call", "timestamp": day(60), "llm": {"provider": "openai",
                                                           "model": "gpt-4o"}},  # old
    ]
    r = client.post("/v1/events", content=orjson.dumps(events),
                    headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text
    return client, calls()


def test_otel_genai_names_are_canonical_end_to_end(llm: Any) -> None:
    client, _ = llm
    page = client.get("/v1/llm/events", params={"type": "gen_ai.chat", "limit": 1000}).json()
    assert len(page["data"]) == 20
    for ev in page["data"]:
        assert set(ev["llm"]) == {"provider", "model", "input_tokens", "output_tokens",
                                  "latency_ms", "cost_usd"}
        assert ev["llm"]["provider"] == MODELS[ev["llm"]["model"]]
    # The canonical names filter, including through the indexed columns.
    claude = client.get("/v1/llm/events", params={"provider": "anthropic",
                                                  "limit": 1000}).json()["data"]
    assert len(claude) == 20 and {e["llm"]["model"] for e in claude} == {"claude-sonnet"}
    assert {e["type"] for e in claude} == {"gen_ai.chat"}


def test_llm_events_filters_and_cursor_pages(llm: Any) -> None:
    client, _ = llm
    everything = client.get("/v1/llm/events", params={"limit": 1000}).json()
    assert len(everything["data"]) == 61  # 60 recent + the old one; not the others
    assert everything["has_more"] is False and everything["next_cursor"] is None
    only = client.get("/v1/llm/events", params={"model": "gpt-4o,gpt-4o-mini",
                                                "since": "10d", "limit": 1000}).json()
    assert len(only["data"]) == 40
    # Cursor walk: every call exactly once, newest first, Link header to the next page.
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 7, "provider": "openai"}
    while True:
        r = client.get("/v1/llm/events", params=params)
        doc = r.json()
        seen += [e["id"] for e in doc["data"]]
        if not doc["has_more"]:
            assert "link" not in r.headers
            break
        assert 'rel="next"' in r.headers["link"]
        params["cursor"] = doc["next_cursor"]
    assert len(seen) == len(set(seen)) == 41
    stamps = [e["timestamp"] for e in client.get(
        "/v1/llm/events", params={"provider": "openai", "limit": 1000}).json()["data"]]
    assert stamps == sorted(stamps, reverse=True)
    until = client.get("/v1/llm/events", params={"until": "30d", "limit": 1000}).json()
    assert len(until["data"]) == 1


def nearest_rank(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[max(0, math.ceil(q * len(values)) - 1)]


def test_usage_by_model_per_day(llm: Any) -> None:
    client, events = llm
    doc = client.get("/v1/llm/usage").json()
    assert doc["group_by"] == "model" and doc["interval"] == "day"
    assert doc["until"] is None and doc["since"] < day(29)
    assert len(doc["buckets"]) == 3  # the 60-day-old call is outside the default 30 days
    got = {(b["ts"][:10], r["key"]): r for b in doc["buckets"] for r in b["rows"]}
    expected: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for i, ev in enumerate(events):
        model = list(MODELS)[i % 3]
        expected.setdefault((ev["timestamp"][:10], model), []).append(
            {"in": 100 + i, "out": 10 + i, "lat": 200.0 + 10 * i, "cost": 0.001 * (i + 1)})
    assert set(got) == set(expected)
    for k, rows in expected.items():
        row = got[k]
        assert row["count"] == len(rows)
        assert row["input_tokens"] == sum(r["in"] for r in rows)
        assert row["output_tokens"] == sum(r["out"] for r in rows)
        assert row["cost_usd"] == pytest.approx(sum(r["cost"] for r in rows))
        lats = [r["lat"] for r in rows]
        assert row["latency_ms"] == {"p50": nearest_rank(lats, 0.5),
                                     "p95": nearest_rank(lats, 0.95),
                                     "p99": nearest_rank(lats, 0.99)}
    assert doc["totals"]["count"] == 60
    assert doc["totals"]["input_tokens"] == sum(100 + i for i in range(60))


def test_usage_by_provider_whole_range(llm: Any) -> None:
    client, _ = llm
    doc = client.get("/v1/llm/usage", params={"group_by": "provider", "interval": "none",
                                              "since": "90d"}).json()
    assert len(doc["buckets"]) == 1 and "ts" not in doc["buckets"][0]
    rows = {r["key"]: r for r in doc["buckets"][0]["rows"]}
    assert rows["openai"]["count"] == 41 and rows["anthropic"]["count"] == 20
    # The old call has no token figures: sums stay over those that reported them.
    assert rows["openai"]["input_tokens"] == sum(100 + i for i in range(60) if i % 3 != 2)
    filtered = client.get("/v1/llm/usage", params={"group_by": "provider", "interval": "week",
                                                   "model": "gpt-4o"}).json()
    keys = {r["key"] for b in filtered["buckets"] for r in b["rows"]}
    assert keys == {"openai"}


def test_usage_bad_parameters(llm: Any) -> None:
    client, _ = llm
    for params in ({"group_by": "type"}, {"interval": "month"}, {"since": "nope"},
                   {"bogus": "1"}):
        r = client.get("/v1/llm/usage", params=params)
        assert r.status_code == 400, params
        assert r.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/llm/events", params={"limit": "0"}).status_code == 400
