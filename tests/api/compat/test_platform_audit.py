"""The platform-audit profile against a real server: records, filters, limits, errors, auth,
the OAuth2 password flow, and a cursor walk racing concurrent ingest."""

from __future__ import annotations

import stat
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jwt

BASE = "/compat/platform-audit"
EVENTS = BASE + "/v1/audit/events"
TOKEN = BASE + "/v1/auth/token"
SECRET = "a-test-secret-of-at-least-32-bytes!"

#: AuditEventResponse properties, in the documented order.
FIELDS = [
    "id", "created_at", "user_id", "actor_type", "actor_id", "source", "event_group",
    "event_type", "status", "resource_type", "resource_id", "session_id", "vm_id", "task_id",
    "request_id", "correlation_id", "http_method", "path", "http_status", "latency_ms",
    "ip_address", "user_agent", "node_ip", "worker_id", "event_payload", "error_message",
]

FULL = {
    "id": "evt_full",
    "timestamp": "2025-04-27T10:00:00Z",
    "type": "vm.started",
    "category": "compute",
    "outcome": "success",
    "actor": {"type": "user", "id": "u-7", "ip": "10.9.9.9", "user_agent": "actor-agent"},
    "subject": {"type": "vm", "id": "vm-1"},
    "source": {"name": "scheduler", "ip": "203.0.113.5", "node_ip": "10.0.0.2",
               "worker_id": "w-3"},
    "context": {"user_id": 42, "session_id": "s-1", "vm_id": "vm-1", "task_id": 9,
                "request_id": "r-1", "correlation_id": "c-1", "http_method": "POST",
                "path": "/vms/vm-1/start", "http_status": 202, "latency_ms": 12.5,
                "user_agent": "curl/8.0"},
    "payload": {"flavor": "m1.small"},
    "error_message": "none",
}
MINIMAL = {"id": "evt_min", "timestamp": "2025-04-27T09:00:00Z", "type": "thing.happened"}


def ingest(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    r = client.post("/v1/events", json=events)
    assert r.status_code in (200, 201), r.text


def ids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [item["id"] for item in resp.json()["items"]]


def test_records_have_every_documented_field(server: Any) -> None:
    c = server.client(server.key("acme"))
    ingest(c, [FULL, MINIMAL])
    r = c.get(EVENTS)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["items", "next_cursor"]
    assert body["next_cursor"] is None
    full, minimal = body["items"]  # newest first
    assert list(full) == FIELDS and list(minimal) == FIELDS
    assert full == {
        "id": "evt_full", "created_at": "2025-04-27T10:00:00Z", "user_id": 42,
        "actor_type": "user", "actor_id": "u-7", "source": "scheduler",
        "event_group": "compute", "event_type": "vm.started", "status": "success",
        "resource_type": "vm", "resource_id": "vm-1", "session_id": "s-1", "vm_id": "vm-1",
        "task_id": 9, "request_id": "r-1", "correlation_id": "c-1", "http_method": "POST",
        "path": "/vms/vm-1/start", "http_status": 202, "latency_ms": 12.5,
        "ip_address": "203.0.113.5", "user_agent": "curl/8.0", "node_ip": "10.0.0.2",
        "worker_id": "w-3", "event_payload": {"flavor": "m1.small"}, "error_message": "none",
    }
    # Required strings fall back to "unknown"; every optional field is null.
    required = {"id": "evt_min", "created_at": "2025-04-27T09:00:00Z",
                "actor_type": "unknown", "source": "unknown", "event_group": "unknown",
                "event_type": "thing.happened", "status": "unknown"}
    assert {k: minimal[k] for k in required} == required
    assert all(minimal[k] is None for k in FIELDS if k not in required)


def test_ip_and_user_agent_fall_back_to_the_actor_and_numbers_are_coerced(server: Any) -> None:
    c = server.client(server.key("acme"))
    ingest(c, [{"type": "x", "actor": {"ip": "10.1.1.1", "user_agent": "ua/1"},
                "context": {"user_id": "17", "task_id": "5", "http_status": "404",
                            "latency_ms": "3.5", "vm_id": 12}}])
    item = c.get(EVENTS).json()["items"][0]
    assert item["ip_address"] == "10.1.1.1" and item["user_agent"] == "ua/1"
    assert (item["user_id"], item["task_id"], item["http_status"]) == (17, 5, 404)
    assert item["latency_ms"] == 3.5 and item["vm_id"] == "12"
    # A user id that is not an integer cannot be rendered as one.
    ingest(c, [{"type": "y", "context": {"user_id": "alice"}}])
    assert c.get(EVENTS, params={"event_type": "y"}).json()["items"][0]["user_id"] is None


def test_every_filter(server: Any) -> None:
    c = server.client(server.key("acme"))
    ingest(c, [
        {"id": "a", "type": "vm.started", "category": "compute", "outcome": "success",
         "context": {"user_id": 1, "vm_id": "vm-1", "session_id": "s-1"}},
        {"id": "b", "type": "vm.stopped", "category": "compute", "outcome": "failure",
         "context": {"user_id": "2", "vm_id": "vm-2", "session_id": "s-1"}},
        {"id": "c", "type": "login", "category": "auth", "outcome": "success",
         "context": {"user_id": 2, "session_id": "s-2"}},
        {"id": "d", "type": "login"},
    ])

    def q(**params: Any) -> set[str]:
        return set(ids(c.get(EVENTS, params=params)))

    assert q() == {"a", "b", "c", "d"}
    assert q(event_group="compute") == {"a", "b"}
    assert q(event_type="login") == {"c", "d"}
    assert q(status="success") == {"a", "c"}
    assert q(user_id=2) == {"b", "c"}  # stored as a string and as a number
    assert q(user_id=1) == {"a"}
    assert q(vm_id="vm-2") == {"b"}
    assert q(session_id="s-1") == {"a", "b"}
    assert q(session_id="s-1", status="failure") == {"b"}
    assert q(event_type="login", user_id=2) == {"c"}
    # The rendered fallback finds the events that show it.
    assert q(status="unknown") == {"d"}
    assert q(event_group="unknown") == {"d"}
    assert q(user_id=99) == set()
    assert q(user_id=10**30) == set()  # beyond 64 bits: no match, no 500
    # Empty values mean "not given"; unknown parameters are ignored, as FastAPI does.
    assert q(event_type="", foo="bar") == {"a", "b", "c", "d"}


def test_limit_default_bounds_and_cursor(server: Any) -> None:
    c = server.client(server.key("acme"))
    ingest(c, [{"type": "bulk", "timestamp": 1745740800000 + i * 1000} for i in range(205)])
    first = c.get(EVENTS).json()
    assert len(first["items"]) == 50 and isinstance(first["next_cursor"], str)
    stamps = [i["created_at"] for i in first["items"]]
    times = [datetime.fromisoformat(s) for s in stamps]
    assert times == sorted(times, reverse=True)
    assert len(c.get(EVENTS, params={"limit": 1}).json()["items"]) == 1
    full = c.get(EVENTS, params={"limit": 200}).json()
    assert len(full["items"]) == 200
    rest = c.get(EVENTS, params={"limit": 200, "cursor": full["next_cursor"]}).json()
    assert len(rest["items"]) == 5 and rest["next_cursor"] is None
    assert not {i["id"] for i in full["items"]} & {i["id"] for i in rest["items"]}


NOT_INT = "Input should be a valid integer, unable to parse string as an integer"
#: (query, loc, type, msg) of FastAPI's validation errors for the documented constraints.
INVALID: list[tuple[dict[str, Any], list[str], str, str]] = [
    ({"limit": 0}, ["query", "limit"], "greater_than_equal",
     "Input should be greater than or equal to 1"),
    ({"limit": 201}, ["query", "limit"], "less_than_equal",
     "Input should be less than or equal to 200"),
    ({"limit": "ten"}, ["query", "limit"], "int_parsing", NOT_INT),
    ({"user_id": "bob"}, ["query", "user_id"], "int_parsing", NOT_INT),
    ({"user_id": "1.5"}, ["query", "user_id"], "int_parsing", NOT_INT),
]


def test_validation_errors_in_fastapi_shape(server: Any) -> None:
    c = server.client(server.key("acme"))
    for params, loc, type_, msg in INVALID:
        r = c.get(EVENTS, params=params)
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/json"
        (err,) = r.json()["detail"]
        assert (err["loc"], err["type"], err["msg"]) == (loc, type_, msg)
        assert err["input"] == str(params[loc[1]])
    # Several bad parameters: one entry each, as FastAPI reports them.
    r = c.get(EVENTS, params={"user_id": "x", "limit": 0})
    assert [e["loc"] for e in r.json()["detail"]] == [["query", "user_id"], ["query", "limit"]]


def test_bad_cursor_is_a_422_on_the_cursor(server: Any) -> None:
    c = server.client(server.key("acme"))
    r = c.get(EVENTS, params={"cursor": "not-a-cursor"})
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"] == ["query", "cursor"] and err["type"] == "value_error"


def test_authentication(server: Any) -> None:
    key = server.key("acme")
    ingest(server.client(key), [{"type": "secret.read"}])
    anon = server.client()
    for headers in ({}, {"Authorization": "Basic dTpw"}, {"Authorization": "Token abc"}):
        r = anon.get(EVENTS, headers=headers)
        assert r.status_code == 401
        assert r.json() == {"detail": "Not authenticated"}
        assert r.headers["www-authenticate"] == "Bearer"
    for headers in ({"X-API-Key": "sk_live_nope"}, {"Authorization": "Bearer sk_live_nope"},
                    {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.bad"}):
        r = anon.get(EVENTS, headers=headers)
        assert r.status_code == 401
        assert r.json() == {"detail": "Could not validate credentials"}
        assert r.headers["www-authenticate"] == "Bearer"
    assert len(ids(anon.get(EVENTS, headers={"X-API-Key": key}))) == 1
    assert len(ids(anon.get(EVENTS, headers={"Authorization": f"Bearer {key}"}))) == 1
    # A key of another tenant sees none of acme's events.
    assert ids(server.client(server.key("globex")).get(EVENTS)) == []
    r = server.client(server.key("acme", "events:write")).get(EVENTS)
    assert r.status_code == 403 and list(r.json()) == ["detail"]
    r = anon.get(BASE + "/v1/nope")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_password_flow_without_jwt_secret(make_server: Any, db_path: Path) -> None:
    server = make_server()
    assert server.settings.jwt_secret == ""
    ingest(server.client(server.key("acme")), [{"type": "vm.started"}])
    server.catalog.create_user("acme", "ada", "correct horse", ["events:read"])
    anon = server.client()

    r = anon.post(TOKEN, data={"username": "ada", "password": "correct horse"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["access_token", "token_type"] and body["token_type"] == "bearer"
    token = body["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["org_id"] == "acme" and claims["sub"] == "ada"
    assert claims["scope"] == "events:read" and claims["exp"] - claims["iat"] == 3600
    auth = {"Authorization": f"Bearer {token}"}
    assert len(ids(anon.get(EVENTS, headers=auth))) == 1
    # HS256 is off engine-wide, so the native API does not take the profile's tokens.
    assert anon.get("/v1/events", headers=auth).status_code == 401
    # A forged token (same claims, another secret) is refused.
    forged = jwt.encode(claims, "a-guessed-secret-that-is-long-enough", algorithm="HS256")
    r = anon.get(EVENTS, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json() == {"detail": "Could not validate credentials"}

    for form in ({"username": "ada", "password": "wrong"},
                 {"username": "nobody", "password": "correct horse"}):
        r = anon.post(TOKEN, data=form)
        assert r.status_code == 401
        assert r.json() == {"detail": "Incorrect username or password"}
        assert r.headers["www-authenticate"] == "Bearer"
    r = anon.post(TOKEN, data={"username": "ada"})
    assert r.status_code == 422
    assert [(e["loc"], e["type"]) for e in r.json()["detail"]] == [
        (["body", "password"], "missing")]
    r = anon.post(TOKEN, data={"username": "ada", "password": "correct horse",
                               "grant_type": "client_credentials"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "grant_type"]

    # The secret is kept beside the database: another server (worker) on the same file
    # accepts the token, one on another file does not.
    assert len(ids(make_server().client().get(EVENTS, headers=auth))) == 1
    elsewhere = make_server(db=str(db_path.with_name("other.db")))
    assert elsewhere.client().get(EVENTS, headers=auth).status_code == 401
    secret_file = db_path.with_name(db_path.name + ".jwt-secret")
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_password_flow_with_jwt_secret(make_server: Any) -> None:
    server = make_server(jwt_secret=SECRET, jwt_tenant_claim="tenant")
    ingest(server.client(server.key("acme")), [{"type": "vm.started"}])
    server.catalog.create_user("acme", "bob", "pw", ["events:read", "events:write"])
    anon = server.client()
    # A requested scope narrows the token.
    r = anon.post(TOKEN, data={"username": "bob", "password": "pw", "scope": "events:read"})
    token = r.json()["access_token"]
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["tenant"] == "acme" and claims["scope"] == "events:read"
    auth = {"Authorization": f"Bearer {token}"}
    assert len(ids(anon.get(EVENTS, headers=auth))) == 1
    # Signed with the engine's secret: the native API accepts it too.
    r = anon.get("/v1/events", headers=auth)
    assert r.status_code == 200 and len(r.json()["data"]) == 1
    expired = jwt.encode({**claims, "exp": 1}, SECRET, algorithm="HS256")
    r = anon.get(EVENTS, headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json() == {"detail": "Could not validate credentials"}
    # A user without events:read gets a token, but the list refuses it.
    server.catalog.create_user("acme", "writer", "pw", ["events:write"])
    token = anon.post(TOKEN, data={"username": "writer", "password": "pw"}).json()
    r = anon.get(EVENTS, headers={"Authorization": f"Bearer {token['access_token']}"})
    assert r.status_code == 403


def test_cursor_walk_is_complete_and_duplicate_free_during_ingest(server: Any) -> None:
    c = server.client(server.key("acme"))
    base = 1745740800000  # 2025-04-27T08:00:00Z
    # Timestamps two seconds apart, with equal timestamps in pairs to exercise the tie-break.
    initial = [{"id": f"init-{i}", "type": "walk", "timestamp": base + (i // 2) * 2000}
               for i in range(300)]
    ingest(c, initial)
    stop = threading.Event()
    added: list[str] = []

    def writer() -> None:
        # Land between, before and after the walked events while the walk runs.
        with server.client(server.key("acme")) as w:
            n = 0
            while not stop.is_set() and n < 400:
                batch = [{"id": f"late-{n + j}", "type": "walk",
                          "timestamp": base - 10_000 + ((n + j) * 997) % 320_000}
                         for j in range(10)]
                ingest(w, batch)
                added.extend(e["id"] for e in batch)
                n += 10

    t = threading.Thread(target=writer)
    t.start()
    deadline = time.monotonic() + 10
    while not added and time.monotonic() < deadline:  # the writer is under way
        time.sleep(0.001)
    seen: list[str] = []
    stamps: list[str] = []
    cursor = None
    try:
        while True:
            params: dict[str, Any] = {"event_type": "walk", "limit": 7}
            if cursor:
                params["cursor"] = cursor
            page = c.get(EVENTS, params=params).json()
            seen.extend(i["id"] for i in page["items"])
            stamps.extend(i["created_at"] for i in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
    finally:
        stop.set()
        t.join()
    assert added, "the writer should have run during the walk"
    assert len(seen) == len(set(seen))
    assert {e["id"] for e in initial} <= set(seen)
    assert set(seen) <= {e["id"] for e in initial} | set(added)
    times = [datetime.fromisoformat(s) for s in stamps]
    assert times == sorted(times, reverse=True)


def test_scope_is_a_setting(make_server: Any) -> None:
    server = make_server(compat_platform_audit_scope="type:vm.*")
    c = server.client(server.key("acme"))
    ingest(c, [FULL, MINIMAL])
    assert ids(c.get(EVENTS)) == ["evt_full"]
    assert ids(c.get(EVENTS, params={"event_type": "thing.happened"})) == []


def test_only_canonical_integers_become_integers(server: Any) -> None:
    c = server.client(server.key("acme"))
    ingest(c, [{"id": f"evt_{i}", "type": "t", "timestamp": f"2025-04-27T0{i}:00:00Z",
                "context": {"user_id": v, "task_id": v}}
               for i, v in enumerate(["042", " 42", "+42", "4_2", "42"])])
    items = {i["id"]: i for i in c.get(EVENTS).json()["items"]}
    # A record's user_id must find that record again: only "42" reads as 42.
    assert [items[f"evt_{i}"]["user_id"] for i in range(5)] == [None, None, None, None, 42]
    assert [items[f"evt_{i}"]["task_id"] for i in range(5)] == [None, None, None, None, 42]
    assert ids(c.get(EVENTS, params={"user_id": 42})) == ["evt_4"]


def test_string_filters_find_numbers_the_records_spell_out(server: Any) -> None:
    c = server.client(server.key("acme"))
    ingest(c, [{"id": "evt_n", "type": "t", "timestamp": "2025-04-27T00:00:00Z",
                "context": {"vm_id": 7, "session_id": 1.5}}])
    item = c.get(EVENTS).json()["items"][0]
    assert (item["vm_id"], item["session_id"]) == ("7", "1.5")
    assert ids(c.get(EVENTS, params={"vm_id": "7"})) == ["evt_n"]
    assert ids(c.get(EVENTS, params={"session_id": "1.5"})) == ["evt_n"]


def test_numbers_beyond_64_bits_are_not_a_poison_row(server: Any) -> None:
    c = server.client(server.key("acme"))
    ingest(c, [{"id": "evt_huge", "type": "t", "timestamp": "2025-04-27T00:00:00Z",
                "context": {"user_id": 1e20, "task_id": -1e300, "http_status": 1e19,
                            "latency_ms": 1e300}}])
    r = c.get(EVENTS)
    assert r.status_code == 200, r.text
    item = r.json()["items"][0]
    assert (item["user_id"], item["task_id"], item["http_status"]) == (None, None, None)
    assert item["latency_ms"] == 1e300
