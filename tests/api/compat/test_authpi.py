"""The authpi profile against a real server: records, list filters and paging, account
checks, errors, and aggregates checked against hand-computed answers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

BASE = "/compat/authpi/v1/accounts"
D = 1745798400000  # 2025-04-28T00:00:00Z, a Monday (weeks start on Monday)
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000


def ingest(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    r = client.post("/v1/events", json=events)
    assert r.status_code in (200, 201), r.text


def ev(id_: str, type_: str, ts: int, *, user: Any = None, client: str | None = None,
       issuer: str | None = None, auth: str | None = None, org: str | None = None,
       agent: str | None = None) -> dict[str, Any]:
    ctx = {k: v for k, v in (("user_id", user), ("auth_type", auth), ("org_id", org),
                             ("agent_id", agent)) if v is not None}
    src = {k: v for k, v in (("client_id", client), ("issuer_id", issuer)) if v is not None}
    return {"id": id_, "type": type_, "timestamp": ts, "context": ctx, "source": src}


#: The fixed data set every aggregate below is computed by hand from.
DATA = [
    ev("e1", "user.created", D + 10 * MIN, user="u1", client="c1", issuer="i1",
       auth="api_key", org="o1"),
    ev("e2", "session.created", D + 20 * MIN, user="u1", client="c1", issuer="i1", auth="user"),
    ev("e3", "session.created", D + 30 * MIN, user="u2", client="c2", issuer="i1", auth="user",
       org="o1"),
    ev("e4", "session.created", D + HOUR + 5 * MIN, user="u3", client="c1", issuer="i2",
       auth="user"),
    ev("e5", "user.created", D + HOUR + 50 * MIN, user="", client="c2", auth="system"),
    ev("e6", "client.updated", D + DAY + 2 * HOUR, client="c3", issuer="i2", auth="api_key",
       agent="a1"),
]


@pytest.fixture
def acme(server: Any) -> httpx.Client:
    c = server.client(server.key("acme"))
    ingest(c, DATA)
    return c


def agg(c: httpx.Client, **params: Any) -> dict[str, Any]:
    r = c.get(f"{BASE}/acme/events/aggregate", params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def listed(c: httpx.Client, **params: Any) -> list[str]:
    r = c.get(f"{BASE}/acme/events", params=params)
    assert r.status_code == 200, r.text
    return [e["id"] for e in r.json()["data"]]


def test_event_record(server: Any) -> None:
    c = server.client(server.key("acme"))
    ingest(c, [{
        "id": "evt_1", "type": "session.created", "timestamp": "2025-04-27T18:40:00.123Z",
        "outcome": "success",
        "actor": {"type": "user", "id": "usr_1", "name": "Ada", "user_agent": "actor-ua"},
        "subject": {"type": "session", "id": "ses_1"},
        "source": {"client_id": "cli_1", "issuer_id": "iss_1", "ip": "198.51.100.7"},
        "context": {"user_id": "usr_1", "org_id": "org_1", "agent_id": "agt_1",
                    "auth_type": "user", "user_agent": "Mozilla/5.0", "request_id": "req_1",
                    "http_method": "POST", "path": "/v1/sessions", "http_status": 201,
                    "latency_ms": 8.25},
        "payload": {"mfa": True}, "metadata": {"region": "eu"}, "error_message": None,
    }, {"id": "evt_2", "type": "user.deleted", "timestamp": 1745779200000,
        "context": {"user_id": 1234}}])
    expected_1 = {
        "id": "evt_1", "type": "session.created", "timestamp": 1745779200123,
        "account_id": "acme", "user_id": "usr_1", "client_id": "cli_1",
        "issuer_id": "iss_1", "org_id": "org_1", "agent_id": "agt_1", "auth_type": "user",
        "ip_address": "198.51.100.7", "user_agent": "Mozilla/5.0", "outcome": "success",
        "actor": {"type": "user", "id": "usr_1", "name": "Ada"},
        "resource": {"type": "session", "id": "ses_1"},
        "request": {"id": "req_1", "method": "POST", "path": "/v1/sessions", "status": 201,
                    "duration_ms": 8.25},
        "error_message": None, "data": {"mfa": True}, "metadata": {"region": "eu"},
    }
    r = c.get(f"{BASE}/acme/events/evt_1")
    assert r.status_code == 200 and r.json() == expected_1
    assert list(r.json()) == list(expected_1)
    # Unknown parts are null; ids are strings; the timestamp is Unix ms.
    expected_2 = {k: None for k in expected_1} | {
        "id": "evt_2", "type": "user.deleted", "timestamp": 1745779200000,
        "account_id": "acme", "user_id": "1234"}
    assert c.get(f"{BASE}/acme/events/evt_2").json() == expected_2
    body = c.get(f"{BASE}/acme/events").json()
    assert body == {"data": [expected_1, expected_2], "next_cursor": None, "has_more": False}


def test_list_filters(acme: httpx.Client) -> None:
    assert listed(acme) == ["e6", "e5", "e4", "e3", "e2", "e1"]  # newest first
    assert listed(acme, user_id="u1") == ["e2", "e1"]
    assert listed(acme, client_id="c2") == ["e5", "e3"]
    assert listed(acme, issuer_id="i2") == ["e6", "e4"]
    assert listed(acme, event_types="user.created,client.updated") == ["e6", "e5", "e1"]
    assert listed(acme, event_types="user.created, ,") == ["e5", "e1"]
    assert listed(acme, issuer_id="i1", event_types="session.created") == ["e3", "e2"]
    # after/before are exclusive.
    assert listed(acme, after=D + 20 * MIN) == ["e6", "e5", "e4", "e3"]
    assert listed(acme, before=D + 20 * MIN) == ["e1"]
    assert listed(acme, after=D + 10 * MIN, before=D + HOUR + 5 * MIN) == ["e3", "e2"]
    assert listed(acme, after=D + 20 * MIN - 0.5) == ["e6", "e5", "e4", "e3", "e2"]
    assert listed(acme, before=f"{(D + 10 * MIN) / 1000}e3") == []  # exponent notation
    assert listed(acme, before=D + 10 * MIN + 0.001) == ["e1"]
    assert listed(acme, after="1e300") == [] and len(listed(acme, before="1e300")) == 6
    assert listed(acme, user_id="nobody") == []
    # Empty values mean "not given"; unknown parameters are ignored.
    assert len(listed(acme, user_id="", after="", unknown="x")) == 6


def test_numeric_ids_match_as_strings(server: Any) -> None:
    c = server.client(server.key("acme"))
    ingest(c, [ev("n1", "user.updated", D, user=42), ev("n2", "user.updated", D + 1,
                                                          user="42")])
    assert listed(c, user_id="42") == ["n2", "n1"]
    assert listed(c, user_id="042") == []
    assert listed(c, user_id="99999999999999999999999") == []


def test_limit_and_cursor_walk(server: Any) -> None:
    c = server.client(server.key("acme"))
    ingest(c, [ev(f"b{i:03d}", "user.updated", D + i * 500) for i in range(123)])
    first = c.get(f"{BASE}/acme/events").json()
    assert len(first["data"]) == 50 and first["has_more"] is True
    assert [e["id"] for e in first["data"]][:2] == ["b122", "b121"]
    assert len(c.get(f"{BASE}/acme/events", params={"limit": 100}).json()["data"]) == 100
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 40, "event_types": "user.updated"}
        if cursor:
            params["cursor"] = cursor
        page = c.get(f"{BASE}/acme/events", params=params).json()
        seen += [e["id"] for e in page["data"]]
        cursor = page["next_cursor"]
        assert page["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert seen == [f"b{i:03d}" for i in range(122, -1, -1)]


def error_of(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"]
    err = body["error"]
    assert err["code"] == status and isinstance(err["message"], str) and err["message"]
    return err  # type: ignore[no-any-return]


#: (path under the account, query, the parameter the 400 must name)
BAD_PARAMETERS: list[tuple[str, dict[str, Any], str]] = [
    ("events", {"limit": 0}, "limit"),
    ("events", {"limit": 101}, "limit"),
    ("events", {"limit": "ten"}, "limit"),
    ("events", {"limit": "5.0"}, "limit"),
    ("events", {"after": "yesterday"}, "after"),
    ("events", {"before": "NaN"}, "before"),
    ("events", {"after": "Infinity"}, "after"),
    ("events", {"cursor": "garbage"}, "cursor"),
    ("events/aggregate", {"group_by": "country"}, "group_by"),
    ("events/aggregate", {"group_by": "context.user_id"}, "group_by"),
    ("events/aggregate", {"interval": "minute"}, "interval"),
    ("events/aggregate", {"count_unique": "user_id,ip"}, "count_unique"),
    ("events/aggregate", {"after": "soon"}, "after"),
    ("events/aggregate", {"before": "0x10"}, "before"),
]


def test_bad_parameters_are_400(acme: httpx.Client) -> None:
    # One server for every case (a loop, not parametrize): each start costs ~0.3 s.
    for path, params, param in BAD_PARAMETERS:
        err = error_of(acme.get(f"{BASE}/acme/{path}", params=params), 400)
        assert (err["type"], err["param"]) == ("invalid_request", param), (path, params)


def test_auth_account_and_not_found(server: Any, acme: httpx.Client) -> None:
    anon = server.client()
    for path in ("events", "events/aggregate", "events/e1"):
        r = anon.get(f"{BASE}/acme/{path}")
        assert error_of(r, 401)["type"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        r = anon.get(f"{BASE}/acme/{path}", headers={"Authorization": "Bearer sk_live_bad"})
        assert error_of(r, 401)["type"] == "unauthorized"
        # The credential's tenant is acme: any other account is forbidden, even if it exists.
        server.catalog.ensure_tenant("globex")
        assert error_of(acme.get(f"{BASE}/globex/{path}"), 403)["type"] == "forbidden"
        assert error_of(acme.get(f"{BASE}/nosuch/{path}"), 403)["type"] == "forbidden"
    # Bearer API keys work like X-API-Key.
    key = server.key("acme", "events:read")
    r = anon.get(f"{BASE}/acme/events/e1", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.json()["id"] == "e1"
    # A credential without events:read is forbidden.
    writer = server.client(server.key("acme", "events:write"))
    assert error_of(writer.get(f"{BASE}/acme/events"), 403)["type"] == "forbidden"
    # Another tenant's event is not found in its own account, nor visible in acme's.
    globex = server.client(server.key("globex"))
    ingest(globex, [ev("g1", "user.created", D)])
    assert error_of(acme.get(f"{BASE}/acme/events/g1"), 404)["type"] == "not_found"
    assert error_of(globex.get(f"{BASE}/globex/events/e1"), 404)["type"] == "not_found"
    assert error_of(acme.get(f"{BASE}/acme/events/nope"), 404)["type"] == "not_found"
    assert globex.get(f"{BASE}/globex/events/g1").json()["account_id"] == "globex"
    assert [e["id"] for e in globex.get(f"{BASE}/globex/events").json()["data"]] == ["g1"]
    assert agg(acme)["buckets"] == [{"rows": [{"count": 6}]}]


def test_aggregate_totals_groups_and_uniques(acme: httpx.Client) -> None:
    assert agg(acme) == {"interval": None, "group_by": None,
                         "buckets": [{"rows": [{"count": 6}]}]}
    assert agg(acme, group_by="type") == {"interval": None, "group_by": "type", "buckets": [
        {"rows": [{"key": "session.created", "count": 3}, {"key": "user.created", "count": 2},
                  {"key": "client.updated", "count": 1}]}]}
    assert agg(acme, group_by="auth_type")["buckets"] == [{"rows": [
        {"key": "user", "count": 3}, {"key": "api_key", "count": 2},
        {"key": "system", "count": 1}]}]
    # e5's empty user id and e6's missing one are left out.
    assert agg(acme, group_by="user_id", count_unique="client_id") == {
        "interval": None, "group_by": "user_id", "buckets": [{"rows": [
            {"key": "u1", "count": 2, "uniques": {"client_id": 1}},
            {"key": "u2", "count": 1, "uniques": {"client_id": 1}},
            {"key": "u3", "count": 1, "uniques": {"client_id": 1}}]}]}
    assert agg(acme, group_by="agent_id")["buckets"] == [{"rows": [{"key": "a1", "count": 1}]}]
    assert agg(acme, group_by="org_id")["buckets"] == [{"rows": [{"key": "o1", "count": 2}]}]
    # Uniques over non-empty values, keyed by the authpi name, in the order asked.
    assert agg(acme, count_unique="user_id,client_id,org_id,agent_id,issuer_id,type,"
                                  "auth_type")["buckets"] == [{"rows": [{"count": 6, "uniques": {
        "user_id": 3, "client_id": 3, "org_id": 1, "agent_id": 1, "issuer_id": 2, "type": 3,
        "auth_type": 3}}]}]
    assert agg(acme, count_unique="")["buckets"] == [{"rows": [{"count": 6}]}]
    # Filters mirror the list.
    assert agg(acme, event_types="session.created", group_by="issuer_id")["buckets"] == [
        {"rows": [{"key": "i1", "count": 2}, {"key": "i2", "count": 1}]}]
    assert agg(acme, after=D + 20 * MIN)["buckets"] == [{"rows": [{"count": 4}]}]
    assert agg(acme, client_id="c1", user_id="u1")["buckets"] == [{"rows": [{"count": 2}]}]


def test_aggregate_intervals(acme: httpx.Client) -> None:
    # No backfill: three hourly buckets over a 26-hour span.
    assert agg(acme, interval="hour") == {"interval": "hour", "group_by": None, "buckets": [
        {"ts": D, "rows": [{"count": 3}]},
        {"ts": D + HOUR, "rows": [{"count": 2}]},
        {"ts": D + DAY + 2 * HOUR, "rows": [{"count": 1}]}]}
    assert agg(acme, interval="hour", group_by="type", count_unique="user_id,issuer_id") == {
        "interval": "hour", "group_by": "type", "buckets": [
            {"ts": D, "rows": [
                {"key": "session.created", "count": 2,
                 "uniques": {"user_id": 2, "issuer_id": 1}},
                {"key": "user.created", "count": 1,
                 "uniques": {"user_id": 1, "issuer_id": 1}}]},
            {"ts": D + HOUR, "rows": [
                {"key": "session.created", "count": 1,
                 "uniques": {"user_id": 1, "issuer_id": 1}},
                {"key": "user.created", "count": 1,
                 "uniques": {"user_id": 0, "issuer_id": 0}}]},
            {"ts": D + DAY + 2 * HOUR, "rows": [
                {"key": "client.updated", "count": 1,
                 "uniques": {"user_id": 0, "issuer_id": 1}}]}]}
    assert agg(acme, interval="day")["buckets"] == [
        {"ts": D, "rows": [{"count": 5}]}, {"ts": D + DAY, "rows": [{"count": 1}]}]
    assert agg(acme, interval="week")["buckets"] == [{"ts": D, "rows": [{"count": 6}]}]


def test_aggregate_empty_results(acme: httpx.Client) -> None:
    none = {"event_types": "no.such.type"}
    assert agg(acme, **none) == {"interval": None, "group_by": None,
                                 "buckets": [{"rows": []}]}
    assert agg(acme, **none, interval="day") == {"interval": "day", "group_by": None,
                                                 "buckets": []}
    assert agg(acme, **none, group_by="type", count_unique="user_id")["buckets"] == [
        {"rows": []}]
    # Matching events whose group keys are all empty or missing: same rules.
    only_c = {"event_types": "client.updated"}
    assert agg(acme, **only_c, group_by="org_id")["buckets"] == [{"rows": []}]
    assert agg(acme, **only_c, group_by="org_id", interval="hour")["buckets"] == []
    assert agg(acme, before=D)["buckets"] == [{"rows": []}]
    assert agg(acme, before=D, interval="week")["buckets"] == []


def test_scope_applies_to_list_get_and_aggregate(make_server: Any) -> None:
    server = make_server(compat_authpi_scope="type:session.*")
    c = server.client(server.key("acme"))
    ingest(c, DATA)
    assert listed(c) == ["e4", "e3", "e2"]
    assert agg(c)["buckets"] == [{"rows": [{"count": 3}]}]
    assert c.get(f"{BASE}/acme/events/e2").status_code == 200
    r = c.get(f"{BASE}/acme/events/e1")  # a user.created: outside the scope
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"


def test_ids_a_record_spells_out_find_it_again(server: Any) -> None:
    c = server.client(server.key("acme"))
    ingest(c, [ev("n1", "user.created", D, user=4.5, client=True),
               ev("n2", "user.created", D + MIN, user="a,b", client=" c7")])
    recs = {r["id"]: r for r in c.get(f"{BASE}/acme/events").json()["data"]}
    for rid, rec in recs.items():
        for name in ("user_id", "client_id"):
            assert listed(c, **{name: rec[name]}) == [rid], (rid, name, rec[name])


def test_huge_numbers_are_400s(acme: httpx.Client) -> None:
    huge = "1" + "0" * 30
    for params in ({"limit": huge}, {"limit": "9" * 5000}):
        r = acme.get(f"{BASE}/acme/events", params=params)
        assert r.status_code == 400 and r.json()["error"]["param"] == "limit", r.text
    for params in ({"after": "1" + "0" * 400}, {"before": "-" + "9" * 5000}):
        assert acme.get(f"{BASE}/acme/events", params=params).status_code == 200


def test_numbers_beyond_64_bits_are_not_a_poison_row(server: Any) -> None:
    c = server.client(server.key("acme"))
    ingest(c, [{"id": "huge", "type": "t", "timestamp": D,
                "context": {"http_status": 1e20, "latency_ms": 1e300}}])
    for url in (f"{BASE}/acme/events", f"{BASE}/acme/events/huge"):
        r = c.get(url)
        assert r.status_code == 200, r.text
    assert r.json()["request"] == {"id": None, "method": None, "path": None, "status": None,
                                   "duration_ms": 1e300}
