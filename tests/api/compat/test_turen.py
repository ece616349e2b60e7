"""The turen compat profile against a real server: every documented request, field and
default of ``turen-events-api``, plus the choices the seed leaves open."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from auditstream.api.compat import turen
from auditstream.model.times import US, format_us, now_us
from conftest import Server

BASE = "/compat/turen"

#: The seed's example record, as a producer sends it to the native API.
SEED_EVENT: dict[str, Any] = {
    "id": "evt_abc123",
    "timestamp": "2026-02-17T10:30:00Z",
    "type": "install",
    "outcome": "block",
    "source": {"client_id": "a1b2c3d4e5f67890"},
    "actor": {"command": "npm install", "args": ["malicious-pkg"], "version": "1.2.0"},
    "subject": {"ecosystem": "npm", "package": "malicious-pkg", "version": "1.0.0"},
    "metadata": {},
    "payload": {"reasons": ["Scorecard below minimum threshold (2.1 < 5.0)"]},
}
#: The seed's example record, as the turen profile must answer it.
SEED_RECORD: dict[str, Any] = {
    "id": "evt_abc123",
    "client_id": "a1b2c3d4e5f67890",
    "timestamp": "2026-02-17T10:30:00Z",
    "type": "install",
    "outcome": "block",
    "actor": {"command": "npm install", "args": ["malicious-pkg"], "version": "1.2.0"},
    "subject": {"ecosystem": "npm", "package": "malicious-pkg", "version": "1.0.0"},
    "metadata": {},
    "payload": {"reasons": ["Scorecard below minimum threshold (2.1 < 5.0)"]},
}


def ago(hours: float) -> str:
    return format_us(now_us() - int(hours * 3600 * US))


def ingest(client: httpx.Client, events: list[dict[str, Any]]) -> list[str]:
    r = client.post("/v1/events", content=orjson.dumps(events))
    assert r.status_code == 201, r.text
    return [d["id"] for d in r.json()["data"]]


def install(i: int, *, outcome: str = "allow", eco: str = "npm", package: str = "react",
            hours: float = 1.0, type: str = "install") -> dict[str, Any]:
    return {
        "type": type, "outcome": outcome, "timestamp": ago(hours + i / 3600),
        "source": {"client_id": f"client{i % 3}"},
        "actor": {"command": f"{eco} install", "args": [package], "version": "1.2.0"},
        "subject": {"ecosystem": eco, "package": package, "version": "1.0.0"},
    }


def turen_client(server: Server, key: str) -> httpx.Client:
    """Headers exactly as the seed's curl lines send them (X-API-Key only)."""
    return httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=30)


def assert_error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return str(body["error"]["message"])


def test_list_events_seed_curl_and_record_shape(server: Server) -> None:
    key = server.key("acme")
    w = server.client(key)
    ingest(w, [SEED_EVENT])
    # An audit with none of the other turen fields: every documented key still present,
    # and the outcome the reference always has reads "review" (see the module docstring).
    ingest(w, [{"type": "audit", "timestamp": "2026-02-17T10:00:00Z"}])
    # Not a turen event: outside the profile's default scope.
    ingest(w, [{"type": "user.created", "timestamp": "2026-02-17T11:00:00Z"}])
    c = turen_client(server, key)
    # curl -H "X-API-Key: sk_live_your_key_here" ".../api/v1/events?limit=50"
    r = c.get(f"{BASE}/api/v1/events?limit=50")
    assert r.status_code == 200
    doc = r.json()
    assert set(doc) == {"events", "pagination"}
    assert doc["pagination"] == {"limit": 50, "offset": 0, "total": 2, "has_more": False}
    first, second = doc["events"]  # newest first
    assert first == SEED_RECORD
    assert list(first) == list(SEED_RECORD)  # documented key order too
    assert second == {
        "id": second["id"], "client_id": None, "timestamp": "2026-02-17T10:00:00Z",
        "type": "audit", "outcome": "review",
        "actor": {"command": None, "args": [], "version": None},
        "subject": {"ecosystem": None, "package": None, "version": None},
        "metadata": {}, "payload": {},
    }
    # Bearer works as everywhere in auditstream.
    r = httpx.get(f"{server.url}{BASE}/api/v1/events", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.json()["pagination"]["total"] == 2


def test_defaults_limits_and_offset_walk(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    key = server.key("acme")
    ids = ingest(server.client(key), [install(i) for i in range(120)])
    newest_first = ids  # install(i) is i seconds older than install(i - 1)
    c = turen_client(server, key)
    doc = c.get(f"{BASE}/api/v1/events").json()
    assert doc["pagination"] == {"limit": 50, "offset": 0, "total": 120, "has_more": True}
    assert [e["id"] for e in doc["events"]] == newest_first[:50]
    assert len(c.get(f"{BASE}/api/v1/events?limit=1000").json()["events"]) == 120
    # Walk to the offset in small store pages to exercise the multi-chunk skip.
    monkeypatch.setattr(turen, "SKIP_CHUNK", 7)
    seen: list[str] = []
    offset = 0
    while True:
        doc = c.get(f"{BASE}/api/v1/events", params={"limit": 25, "offset": offset}).json()
        assert doc["pagination"]["offset"] == offset and doc["pagination"]["limit"] == 25
        assert doc["pagination"]["total"] == 120
        seen += [e["id"] for e in doc["events"]]
        assert doc["pagination"]["has_more"] == (offset + 25 < 120)
        if not doc["pagination"]["has_more"]:
            break
        offset += 25
    assert seen == newest_first
    past = c.get(f"{BASE}/api/v1/events?offset=500").json()
    assert past == {"events": [], "pagination": {"limit": 50, "offset": 500, "total": 120,
                                                 "has_more": False}}
    exact_end = c.get(f"{BASE}/api/v1/events?offset=119").json()
    assert [e["id"] for e in exact_end["events"]] == newest_first[119:]
    assert exact_end["pagination"]["has_more"] is False
    # Empty values count as absent.
    assert c.get(f"{BASE}/api/v1/events?limit=&offset=&type=").json()["pagination"] == {
        "limit": 50, "offset": 0, "total": 120, "has_more": True}


def test_filters(server: Server) -> None:
    key = server.key("acme")
    ingest(server.client(key), [
        install(0, outcome="allow", eco="npm", package="react", hours=2),
        install(1, outcome="block", eco="npm", package="left-padd", hours=30),
        install(2, outcome="review", eco="pip", package="reqeusts", hours=50),
        install(3, outcome="allow", eco="go", package="github.com/spf13/cobra", hours=80,
                type="audit"),
        {"type": "llm.call", "timestamp": ago(1), "llm": {"provider": "openai", "model": "m"}},
    ])
    c = turen_client(server, key)

    def pkgs(**params: Any) -> list[str | None]:
        r = c.get(f"{BASE}/api/v1/events", params=params)
        assert r.status_code == 200, r.text
        return [e["subject"]["package"] for e in r.json()["events"]]

    every = ["react", "left-padd", "reqeusts", "github.com/spf13/cobra"]
    assert pkgs() == every  # turen's events only: the LLM call is /events/llm's
    assert pkgs(type="all") == every and pkgs(outcome="all") == every
    assert pkgs(type="install") == ["react", "left-padd", "reqeusts"]
    assert pkgs(type="audit") == ["github.com/spf13/cobra"]
    assert pkgs(outcome="allow") == ["react", "github.com/spf13/cobra"]
    assert pkgs(outcome="review,block") == ["left-padd", "reqeusts"]
    assert pkgs(ecosystem="npm") == ["react", "left-padd"]
    assert pkgs(ecosystem="pip") == ["reqeusts"]
    assert pkgs(ecosystem="cargo") == []
    assert pkgs(package="left-padd") == ["left-padd"]
    assert pkgs(since=ago(40)) == ["react", "left-padd"]
    assert pkgs(until=ago(40)) == ["reqeusts", "github.com/spf13/cobra"]
    assert pkgs(since=ago(60), until=ago(10), type="install", outcome="block",
                ecosystem="npm", package="left-padd") == ["left-padd"]
    r = c.get(f"{BASE}/api/v1/events", params={"outcome": "block", "since": ago(60)})
    assert r.json()["pagination"]["total"] == 1


def test_errors_have_one_shape(server: Server) -> None:
    key = server.key("acme")
    c = turen_client(server, key)
    ev = f"{BASE}/api/v1/events"
    for params in ({"limit": "abc"}, {"limit": "0"}, {"limit": "1001"}, {"limit": "-5"},
                   {"offset": "-1"}, {"offset": "x"}, {"since": "yesterday"},
                   {"until": "2026-13-45"}, {"typo": "install"}):
        msg = assert_error(c.get(ev, params=params), 400, "invalid_parameter")
        assert next(iter(params)) in msg, msg
    assert "1000" in assert_error(c.get(ev, params={"limit": 1001}), 400, "invalid_parameter")
    assert c.get(ev, params={"limit": 1000}).status_code == 200
    assert_error(c.get(f"{BASE}/api/v1/stats/summary?period=1y"), 400, "invalid_parameter")
    assert_error(c.get(f"{BASE}/api/v1/events/llm?limit=5000"), 400, "invalid_parameter")
    r = httpx.get(f"{server.url}{ev}")
    assert_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"]
    assert_error(httpx.get(f"{server.url}{ev}", headers={"X-API-Key": "sk_live_nope"}),
                 401, "unauthorized")
    write_only = turen_client(server, server.key("acme", "events:write"))
    assert_error(write_only.get(ev), 403, "forbidden")
    assert_error(c.get(f"{BASE}/api/v1/nope"), 404, "not_found")
    assert_error(c.post(ev), 405, "method_not_allowed")


def test_summary_stats(server: Server) -> None:
    key = server.key("acme")
    recent = ([install(i, outcome="allow", eco="npm", hours=2) for i in range(5)]
              + [install(i, outcome="review", eco="pip", hours=3 * 24) for i in range(3)]
              + [install(i, outcome="block", eco="go", hours=20 * 24) for i in range(2)])
    old = [install(i, outcome="block", eco="cargo", hours=60 * 24) for i in range(4)]
    # Not turen events: the summary must not count them (issue 7).
    other = [{"type": "heartbeat", "timestamp": ago(1)},
             {"type": "login", "timestamp": ago(2), "outcome": "allow"},
             {"type": "llm.call", "timestamp": ago(3), "subject": {"ecosystem": "npm"}}]
    ingest(server.client(key), recent + old + other)
    c = turen_client(server, key)
    # curl -H "X-API-Key: sk_live_your_key_here" .../api/v1/stats/summary
    r = c.get(f"{BASE}/api/v1/stats/summary")
    assert r.status_code == 200
    doc = r.json()
    assert list(doc) == ["total_events", "outcomes", "ecosystems", "period"]
    assert doc == {"total_events": 10, "outcomes": {"allow": 5, "review": 3, "block": 2},
                   "ecosystems": {"npm": 5, "pip": 3, "go": 2}, "period": "30d"}
    assert list(doc["outcomes"]) == ["allow", "review", "block"]  # largest first
    expect = {"24h": (5, {"allow": 5}), "7d": (8, {"allow": 5, "review": 3}),
              "30d": (10, {"allow": 5, "review": 3, "block": 2}),
              "90d": (14, {"allow": 5, "review": 3, "block": 6})}
    for period, (total, outcomes) in expect.items():
        doc = c.get(f"{BASE}/api/v1/stats/summary", params={"period": period}).json()
        assert doc["period"] == period
        assert doc["total_events"] == total and doc["outcomes"] == outcomes
    for bad in ("1y", "30", "12h", "all"):
        assert_error(c.get(f"{BASE}/api/v1/stats/summary", params={"period": bad}),
                     400, "invalid_parameter")
    other = turen_client(server, server.key("globex"))
    assert other.get(f"{BASE}/api/v1/stats/summary").json() == {
        "total_events": 0, "outcomes": {}, "ecosystems": {}, "period": "30d"}


def test_llm_events(server: Server) -> None:
    key = server.key("acme")
    calls = [
        {"type": "llm.call", "timestamp": ago(1), "source": {"client_id": "a1b2"},
         "llm": {"provider": "openai", "model": "gpt-4o-mini", "input_tokens": 1200,
                 "output_tokens": 250, "latency_ms": 812.5, "cost_usd": 0.00033,
                 "finish_reason": "stop"}},
        {"type": "llm.call", "timestamp": ago(30),
         "llm": {"provider": "anthropic", "model": "claude-sonnet-4", "input_tokens": 900,
                 "output_tokens": 100, "latency_ms": 640, "cost_usd": 0.0042}},
        # OpenTelemetry GenAI names, another type: still an LLM call.
        {"type": "chat", "timestamp": ago(50),
         "llm": {"gen_ai.system": "google", "gen_ai.request.model": "gemini-2.0-flash",
                 "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}},
    ]
    ingest(server.client(key), calls + [install(0, hours=0.5), {"type": "login"}])
    c = turen_client(server, key)
    # curl -H "X-API-Key: sk_live_your_key_here" ".../api/v1/events/llm?limit=50"
    r = c.get(f"{BASE}/api/v1/events/llm?limit=50")
    assert r.status_code == 200
    doc = r.json()
    assert doc["pagination"] == {"limit": 50, "offset": 0, "total": 3, "has_more": False}
    first = doc["events"][0]
    assert list(first) == ["id", "timestamp", "client_id", "provider", "model",
                           "input_tokens", "output_tokens", "latency_ms", "cost_usd"]
    assert {k: v for k, v in first.items() if k not in ("id", "timestamp")} == {
        "client_id": "a1b2", "provider": "openai", "model": "gpt-4o-mini",
        "input_tokens": 1200, "output_tokens": 250, "latency_ms": 812.5, "cost_usd": 0.00033}
    assert first["timestamp"] == calls[0]["timestamp"]
    assert [e["provider"] for e in doc["events"]] == ["openai", "anthropic", "google"]
    otel = doc["events"][2]
    assert (otel["model"], otel["input_tokens"], otel["cost_usd"], otel["client_id"]) == (
        "gemini-2.0-flash", 10, None, None)

    def providers(**params: Any) -> list[str]:
        r = c.get(f"{BASE}/api/v1/events/llm", params=params)
        assert r.status_code == 200, r.text
        return [e["provider"] for e in r.json()["events"]]

    assert providers(provider="anthropic") == ["anthropic"]
    assert providers(model="gpt-4o-mini") == ["openai"]
    assert providers(since=ago(40)) == ["openai", "anthropic"]
    assert providers(until=ago(10)) == ["anthropic", "google"]
    assert providers(limit=1, offset=1) == ["anthropic"]
    # /events/llm is its own route, not an /events/{x} lookup or filter.
    assert_error(c.get(f"{BASE}/api/v1/events/llm?type=install"), 400, "invalid_parameter")


def test_mounted_at_root(make_server: Any) -> None:
    srv = make_server(compat_root="turen")
    key = srv.key("acme")
    ingest(srv.client(key), [SEED_EVENT])
    c = turen_client(srv, key)
    assert c.get("/api/v1/events").json()["events"] == [SEED_RECORD]
    assert c.get("/api/v1/stats/summary").status_code == 200
    assert c.get("/api/v1/events/llm").json()["events"] == []
    assert_error(c.get("/api/v1/events?limit=0"), 400, "invalid_parameter")
    assert c.get(f"{BASE}/api/v1/events").json()["events"] == [SEED_RECORD]


def test_summary_maps_values_like_the_records(make_server: Any) -> None:
    srv = make_server(compat_turen_scope="")  # the whole stream, to see the mapping
    key = srv.key("acme")
    ingest(srv.client(key), [
        install(0, outcome="allow", eco="npm"), install(1, outcome="success", eco="pypi"),
        install(2, outcome="denied", eco="PyPI"), install(3, outcome="failure", eco="maven"),
        {"type": "login", "timestamp": ago(1)},  # no outcome, no ecosystem
    ])
    c = turen_client(srv, key)
    doc = c.get(f"{BASE}/api/v1/stats/summary").json()
    assert doc == {"total_events": 5, "outcomes": {"allow": 2, "review": 2, "block": 1},
                   "ecosystems": {"pip": 2, "npm": 1}, "period": "30d"}
    # Largest first; ties in the reference's order.
    assert list(doc["outcomes"]) == ["allow", "review", "block"]
    records = c.get(f"{BASE}/api/v1/events").json()["events"]
    shown = [(e["type"], e["outcome"], e["subject"]["ecosystem"]) for e in records]
    assert shown == [("audit", "review", None), ("install", "allow", "npm"),
                     ("install", "allow", "pip"), ("install", "block", "pip"),
                     ("install", "review", None)]
    # The summary's counts are what the filters select.
    for outcome, n in doc["outcomes"].items():
        r = c.get(f"{BASE}/api/v1/events", params={"outcome": outcome})
        assert r.json()["pagination"]["total"] == n, outcome
    for eco, n in doc["ecosystems"].items():
        r = c.get(f"{BASE}/api/v1/events", params={"ecosystem": eco})
        assert r.json()["pagination"]["total"] == n, eco
    assert c.get(f"{BASE}/api/v1/events", params={"type": "audit"}).json()[
        "pagination"]["total"] == 1
    for params in ({"outcome": "success"}, {"ecosystem": "maven"}, {"type": "login"}):
        assert_error(c.get(f"{BASE}/api/v1/events", params=params), 400, "invalid_parameter")


def test_scopes_are_settings(make_server: Any) -> None:
    srv = make_server(compat_turen_scope="type:install subject.ecosystem:npm",
                      compat_turen_llm_scope="llm.provider:openai")
    key = srv.key("acme")
    ingest(srv.client(key), [
        install(0, eco="npm", package="react"), install(1, eco="pip", package="requests"),
        {"type": "llm.call", "timestamp": ago(1), "llm": {"provider": "openai"}},
        {"type": "llm.call", "timestamp": ago(2), "llm": {"provider": "anthropic"}},
    ])
    c = turen_client(srv, key)
    assert [e["subject"]["package"] for e in c.get(f"{BASE}/api/v1/events").json()["events"]
            ] == ["react"]
    assert c.get(f"{BASE}/api/v1/stats/summary").json()["total_events"] == 1
    assert [e["provider"] for e in c.get(f"{BASE}/api/v1/events/llm").json()["events"]] == [
        "openai"]


def test_huge_numbers_are_400s(server: Server) -> None:
    c = turen_client(server, server.key("acme"))
    huge = "1" + "0" * 30
    for url in (f"{BASE}/api/v1/events", f"{BASE}/api/v1/events/llm"):
        for params in ({"offset": huge}, {"limit": huge}, {"offset": "-" + huge},
                       {"offset": "9" * 5000}, {"since": huge}, {"until": "1" + "0" * 400},
                       {"since": "9" * 5000}, {"until": "-" + huge}):
            msg = assert_error(c.get(url, params=params), 400, "invalid_parameter")
            assert next(iter(params)) in msg, msg


def test_deep_offsets_are_refused_past_the_documented_depth(server: Server) -> None:
    key = server.key("acme")
    ingest(server.client(key), [install(0)])
    c = turen_client(server, key)
    ok = c.get(f"{BASE}/api/v1/events", params={"offset": turen.MAX_DEPTH - 1000,
                                                 "limit": 1000})
    assert ok.status_code == 200 and ok.json()["events"] == []
    msg = assert_error(c.get(f"{BASE}/api/v1/events", params={
        "offset": turen.MAX_DEPTH - 999, "limit": 1000}), 400, "invalid_parameter")
    assert str(turen.MAX_DEPTH) in msg and "since" in msg
