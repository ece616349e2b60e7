"""The native /v1 API against a real server and a real SQLite file."""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pytest

from conftest import Server


def post(client: Any, body: Any, **kw: Any) -> Any:
    return client.post("/v1/events", content=orjson.dumps(body), **kw)


def test_ingest_single_array_and_ndjson(server: Server) -> None:
    c = server.client(server.key("acme"))
    r = post(c, {"type": "install", "outcome": "block"})
    assert r.status_code == 201
    assert [d["seq"] for d in r.json()["data"]] == [1]
    assert r.json()["data"][0]["id"].startswith("evt_")
    r = post(c, [{"type": "a"}, {"type": "b"}])
    assert [d["seq"] for d in r.json()["data"]] == [2, 3]
    nd = b'{"type":"c"}\n\n{"type":"d"}\n'
    r = c.post("/v1/events", content=nd, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 201 and [d["seq"] for d in r.json()["data"]] == [4, 5]
    types = [e["type"] for e in c.get("/v1/events?order=asc").json()["data"]]
    assert types == ["install", "a", "b", "c", "d"]


def test_invalid_batch_reports_every_bad_item_and_stores_nothing(server: Server) -> None:
    c = server.client(server.key("acme"))
    r = post(c, [{"type": "ok"}, {"type": "x", "severity": "huge"}, {"tipe": "x"},
                 {"type": "y", "timestamp": "yesterday"}, {"type": 5}])
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    errs = {(e["index"], e["field"]) for e in r.json()["errors"]}
    assert {(1, "severity"), (2, "type"), (2, "tipe"), (3, "timestamp"), (4, "type")} <= errs
    assert c.get("/v1/events").json()["data"] == []


def test_bad_bodies_are_clear_4xx(server: Server) -> None:
    c = server.client(server.key("acme"))
    cases = [b"", b"{", b"[1,2]", b'"str"', b"[]", b'{"type": "x", "tags": "notalist"}',
             b'{"type":"x","timestamp":"2026-13-45"}', b'{"type":"x","requires_action":"yes"}']
    for body in cases:
        r = c.post("/v1/events", content=body)
        assert r.status_code == 400, (body, r.text)
        assert "detail" in r.json()
    r = c.post("/v1/events", content=b"x" * (10 * 1024 * 1024 + 1))
    assert r.status_code == 413
    nd = b"\n".join(b'{"type":"x"}' for _ in range(10_001))
    r = c.post("/v1/events", content=nd, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 413
    assert c.get("/v1/events").json()["data"] == []


def test_limits_are_settings(make_server: Any) -> None:
    srv = make_server(max_batch_events=3, max_body_bytes=200)
    c = srv.client(srv.key("acme"))
    assert post(c, [{"type": "a"}] * 4).status_code == 413
    assert post(c, [{"type": "a", "title": "x" * 300}]).status_code == 413
    assert post(c, [{"type": "a"}] * 3).status_code == 201


def test_timestamps_accept_rfc3339_date_and_unix_ms(server: Server) -> None:
    c = server.client(server.key("acme"))
    r = post(c, [{"type": "a", "timestamp": "2026-02-17T12:30:00+02:00"},
                 {"type": "b", "timestamp": "2026-02-17"},
                 {"type": "c", "timestamp": 1771331400000}])
    assert r.status_code == 201
    got = {e["type"]: e["timestamp"] for e in c.get("/v1/events").json()["data"]}
    assert got == {"a": "2026-02-17T10:30:00Z", "b": "2026-02-17T00:00:00Z",
                   "c": "2026-02-17T12:30:00Z"}
    since = c.get("/v1/events", params={"since": "2026-02-17T05:00:00Z",
                                        "until": "1771331400000"}).json()["data"]
    assert [e["type"] for e in since] == ["a"]


def test_client_ids_are_idempotent_and_conflicts_409(server: Server) -> None:
    c = server.client(server.key("acme"))
    e = {"id": "evt_mine_1", "type": "a", "timestamp": "2026-02-17T10:00:00Z"}
    r1 = post(c, e)
    r2 = post(c, e)
    assert r1.status_code == 201 and r2.status_code == 200
    assert r1.json()["data"] == r2.json()["data"] == [{"id": "evt_mine_1", "seq": 1}]
    r3 = post(c, [{"type": "fresh"}, dict(e, type="b")])
    assert r3.status_code == 409 and r3.json()["errors"][0]["index"] == 1
    assert len(c.get("/v1/events").json()["data"]) == 1


def test_idempotency_key_header(server: Server) -> None:
    c = server.client(server.key("acme"))
    h = {"Idempotency-Key": "req-42"}
    r1 = post(c, [{"type": "a"}, {"type": "b"}], headers=h)
    r2 = post(c, [{"type": "a"}, {"type": "b"}], headers=h)
    assert r1.json()["data"] == r2.json()["data"]
    assert post(c, [{"type": "other"}], headers=h).status_code == 409
    assert len(c.get("/v1/events").json()["data"]) == 2


def seed(c: Any) -> None:
    r = post(c, [
        {"type": "install", "outcome": "block", "severity": "high", "title": "Blocked left-padd",
         "subject": {"ecosystem": "npm", "package": "left-padd"}, "actor": {"id": "alice"},
         "timestamp": "2026-11-01T10:00:00Z"},
        {"type": "install", "outcome": "allow", "subject": {"ecosystem": "pip"},
         "actor": {"id": "bob"}, "timestamp": "2026-11-01T11:00:00Z"},
        {"type": "user.created", "severity": "medium", "actor": {"id": "alice"},
         "timestamp": "2026-11-02T10:00:00Z", "tags": ["sso", "prod"]},
        {"type": "ais_gap", "title": "AIS gap detected for MV Nordic Star",
         "location": {"zone": "lng_terminal"}, "timestamp": "2026-11-03T10:00:00Z",
         "context": {"http_status": 500}},
    ])
    assert r.status_code == 201


def ids_of(c: Any, **params: Any) -> list[str]:
    r = c.get("/v1/events", params=params)
    assert r.status_code == 200, r.text
    return [e["type"] for e in r.json()["data"]]


def test_filters(server: Server) -> None:
    c = server.client(server.key("acme"))
    seed(c)
    assert ids_of(c, type="install") == ["install", "install"]
    assert ids_of(c, **{"subject.ecosystem": "npm"}) == ["install"]
    assert ids_of(c, type="ais_gap,user.created") == ["ais_gap", "user.created"]
    assert ids_of(c, **{"location.zone": "lng_terminal"}) == ["ais_gap"]
    assert ids_of(c, **{"context.http_status": "500"}) == ["ais_gap"]
    assert ids_of(c, min_severity="medium") == ["ais_gap", "user.created", "install"]
    assert ids_of(c, since="2026-11-02", until="2026-11-03") == ["user.created"]
    assert ids_of(c, tags="prod") == ["user.created"]
    assert ids_of(c, q='"Nordic Star"') == ["ais_gap"]
    assert ids_of(c, q="severity:>=high type:install* actor.id:alice -outcome:allow") == [
        "install"]
    assert ids_of(c, q="type:user.* since:2026-11-01") == ["user.created"]
    assert ids_of(c, sort="severity", order="desc") == [
        "ais_gap", "install", "user.created", "install"]  # ais_gap defaults to high
    r = c.get("/v1/events", params={"include_total": "true", "type": "install", "limit": 1})
    assert r.json()["total"] == 2 and r.json()["has_more"] is True


def test_bad_query_parameters(server: Server) -> None:
    c = server.client(server.key("acme"))
    for params, field in [({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
                          ({"limit": "ten"}, "limit"), ({"sort": "title"}, "sort"),
                          ({"order": "up"}, "order"), ({"since": "someday"}, "since"),
                          ({"bogus": "1"}, "bogus"), ({"severity": "huge"}, "severity"),
                          ({"min_severity": "x"}, "min_severity"),
                          ({"cursor": "garbage"}, "cursor")]:
        r = c.get("/v1/events", params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["field"] == field
    r = c.get("/v1/events", params={"q": "type:(install"})
    assert r.status_code == 400 and "position" in r.json()


def test_cursor_walk_under_concurrent_ingest(server: Server) -> None:
    c = server.client(server.key("acme"))
    post(c, [{"type": "x", "timestamp": f"2026-11-01T00:{i // 60:02d}:{i % 60:02d}Z"}
             for i in range(600)])
    stop = threading.Event()

    def ingest() -> None:
        w = server.client(c.headers["X-API-Key"])
        while not stop.is_set():
            post(w, [{"type": "late", "timestamp": "2026-11-01T00:05:00Z"}, {"type": "new"}])

    t = threading.Thread(target=ingest)
    t.start()
    try:
        seen: list[str] = []
        url = "/v1/events?type=x&limit=45"
        while url:
            r = c.get(url)
            seen += [e["id"] for e in r.json()["data"]]
            link = r.headers.get("link")
            url = link[1:link.index(">")] if link else ""
    finally:
        stop.set()
        t.join()
    assert len(seen) == 600 == len(set(seen))


def test_get_by_id_and_tenant_isolation(server: Server) -> None:
    a = server.client(server.key("acme"))
    b = server.client(server.key("globex"))
    eid = post(a, {"type": "secret.read", "title": "acme only"}).json()["data"][0]["id"]
    assert a.get(f"/v1/events/{eid}").json()["title"] == "acme only"
    r = b.get(f"/v1/events/{eid}")
    assert r.status_code == 404 and r.json()["status"] == 404
    assert a.get("/v1/events/evt_nope").status_code == 404
    assert b.get("/v1/events").json()["data"] == []
    assert b.get("/v1/events/aggregate").json()["buckets"] == [{"rows": []}]
    assert b.get("/v1/stats/summary").json()["total_events"] == 0


def test_aggregate_semantics(server: Server) -> None:
    c = server.client(server.key("acme"))
    seed(c)
    r = c.get("/v1/events/aggregate", params={
        "group_by": "type", "interval": "day", "count_unique": "actor.id"}).json()
    assert r["interval"] == "day" and r["group_by"] == "type"
    assert [b["ts"] for b in r["buckets"]] == [
        "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"]
    assert r["buckets"][0]["rows"] == [{"key": "install", "count": 2,
                                        "uniques": {"actor.id": 2}}]
    flat = c.get("/v1/events/aggregate").json()
    assert flat["buckets"] == [{"rows": [{"count": 4}]}]
    none = c.get("/v1/events/aggregate", params={"type": "nope"}).json()
    assert none["buckets"] == [{"rows": []}]
    none_iv = c.get("/v1/events/aggregate", params={"type": "nope", "interval": "hour"}).json()
    assert none_iv["buckets"] == []
    assert c.get("/v1/events/aggregate", params={"interval": "year"}).status_code == 400
    assert c.get("/v1/events/aggregate", params={"group_by": "nope"}).status_code == 400


def test_numeric_rollups(server: Server) -> None:
    c = server.client(server.key("acme"))
    post(c, [{"type": "llm.call", "llm": {"provider": "openai", "cost_usd": cost,
                                         "latency_ms": lat, "input_tokens": 10}}
             for cost, lat in [(0.5, 100), (1.5, 200), (2.0, 300), (0.0, 400)]])
    r = c.get("/v1/events/aggregate", params={
        "group_by": "llm.provider", "sum": "llm.cost_usd,llm.input_tokens",
        "p95": "llm.latency_ms", "max": "llm.latency_ms"}).json()
    row = r["buckets"][0]["rows"][0]
    assert row["key"] == "openai" and row["count"] == 4
    assert row["metrics"]["llm.cost_usd"]["sum"] == 4.0
    assert row["metrics"]["llm.input_tokens"]["sum"] == 40
    assert row["metrics"]["llm.latency_ms"] == {"max": 400, "p95": 400}


def test_stats_summary(server: Server) -> None:
    c = server.client(server.key("acme"))
    post(c, [{"type": "install", "outcome": "block", "subject": {"ecosystem": "npm"}},
             {"type": "install", "outcome": "allow", "subject": {"ecosystem": "npm"}},
             {"type": "install", "outcome": "allow", "subject": {"ecosystem": "pip"},
              "timestamp": "2020-01-01"}])
    s = c.get("/v1/stats/summary").json()
    assert s["period"] == "30d" and s["total_events"] == 2
    assert s["outcomes"] == {"allow": 1, "block": 1} and s["ecosystems"] == {"npm": 2}
    assert c.get("/v1/stats/summary?period=forever").status_code == 400


def test_auth(server: Server) -> None:
    anon = server.client()
    assert anon.get("/v1/events").status_code == 401
    assert anon.get("/v1/events", headers={"X-API-Key": "sk_live_nope"}).status_code == 401
    assert anon.get("/v1/events", headers={"Authorization": "Basic x"}).status_code == 401
    ro = server.client(server.key("acme", "events:read"))
    wo = server.client(server.key("acme", "events:write"))
    assert post(ro, {"type": "x"}).status_code == 403
    assert post(wo, {"type": "x"}).status_code == 201
    assert wo.get("/v1/events").status_code == 403
    bearer = server.key("acme")
    assert anon.get("/v1/events", headers={"Authorization": f"Bearer {bearer}"}).status_code == 200
    key_id = server.catalog.keys("acme")[-1].id
    # Through the serving process's own catalog a revocation is immediate (from another
    # process it takes up to PRINCIPAL_TTL_S: tests/auth/test_principal_cache.py).
    server.app.state.services.catalog.revoke_key(key_id)
    assert anon.get("/v1/events", headers={"Authorization": f"Bearer {bearer}"}).status_code == 401


def test_ops_routes(server: Server) -> None:
    c = server.client(server.key("acme"))
    post(c, {"type": "x"})
    assert c.get("/healthz").json() == {"status": "ok"}
    m = c.get("/metrics").text
    assert "auditstream_events_ingested_total 1.0" in m
    spec = c.get("/openapi.json").json()
    assert "/v1/events" in spec["paths"] and "/v1/events/aggregate" in spec["paths"]
    assert c.get("/docs").status_code == 200
    r = c.get("/no/such/route")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/not-found")  # the problem of a missing event too


def test_huge_numbers_in_filters_are_not_errors(server: Server) -> None:
    c = server.client(server.key("acme"))
    post(c, {"type": "x", "context": {"user_id": "100000000000000000000000"}})
    r = c.get("/v1/events", params={"context.user_id": "100000000000000000000000"})
    assert r.status_code == 200 and len(r.json()["data"]) == 1
    r = c.get("/v1/events", params={"q": "context.user_id:>100000000000000000000000"})
    assert r.status_code == 200


def test_retry_of_an_event_without_timestamp_is_a_replay(server: Server) -> None:
    c = server.client(server.key("acme"))
    body = {"id": "order-17", "type": "x", "metadata": {"amount": 1.0}}
    first = post(c, body)
    assert first.status_code == 201
    again = post(c, body)
    assert again.status_code == 200 and again.json()["data"] == first.json()["data"]
    # The server's timestamp is not the client's: naming one now is other content.
    assert post(c, {**body, "timestamp": "2026-01-01T00:00:00Z"}).status_code == 409
    timed = {"id": "order-18", "type": "x", "timestamp": "2026-01-01T00:00:00Z"}
    assert post(c, timed).status_code == 201
    assert post(c, {"id": "order-18", "type": "x"}).status_code == 409
    assert len(c.get("/v1/events").json()["data"]) == 2


def test_aggregates_survive_huge_sums_and_times_before_1970(server: Server) -> None:
    c = server.client(server.key("acme"))
    post(c, [{"type": "big", "context": {"n": 2**53 - 1}}] * 1100)
    r = c.get("/v1/events/aggregate", params={"sum": "context.n"})
    assert r.status_code == 200
    assert r.json()["buckets"][0]["rows"][0]["metrics"]["context.n"]["sum"] == \
        pytest.approx(1100 * (2**53 - 1))
    post(c, {"type": "old", "timestamp": "1969-12-31T23:30:00Z"})
    r = c.get("/v1/events/aggregate", params={"type": "old", "interval": "hour"}).json()
    assert [b["ts"] for b in r["buckets"]] == ["1969-12-31T23:00:00Z"]
    r = c.get("/v1/events/aggregate", params={"type": "old", "interval": "week"}).json()
    assert [b["ts"] for b in r["buckets"]] == ["1969-12-29T00:00:00Z"]


@pytest.mark.parametrize("before", ["-9761835568377816.0", "9761835568377816"])
def test_time_bounds_beyond_64_bits_of_microseconds_mean_no_bound(
    server: Server, before: str,
) -> None:
    """authpi takes Unix milliseconds up to 1e16: as microseconds that is beyond 64 bits."""
    c = server.client(server.key("acme"))
    post(c, {"type": "x"})
    r = c.get("/compat/authpi/v1/accounts/acme/events/aggregate", params={"before": before})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
def test_a_malformed_idempotency_key_is_a_400(server: Server, key: str) -> None:
    c = server.client(server.key("acme"))
    r = post(c, {"type": "x"}, headers={"Idempotency-Key": key})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "Idempotency-Key"
    assert c.get("/v1/events").json()["data"] == []


def test_include_is_refused_on_lists_not_silently_ignored(server: Any) -> None:
    """Proofs come with ``GET /v1/events/{id}?include=proof`` (or the stream's
    ``include_proof``); a list given ``include`` must not answer as if it had added them."""
    key = server.key("acme")
    with server.client(key) as c:
        for value in ["proof", "bogus"]:
            r = c.get(f"/v1/events?include={value}")
            assert r.status_code == 400 and r.json()["errors"][0]["field"] == "include"
