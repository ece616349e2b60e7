"""The VaultTerm compat profile against a real server: the seed's request, the flat record,
date windows, and a cursor walk that stays complete and duplicate-free under ingest."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import httpx
import jwt
import orjson

from auditstream.model.times import US, format_us, now_us, parse_time
from conftest import Server

BASE = "/compat/vaultterm"
RECORD_KEYS = ["id", "action", "title", "category", "severity", "actor", "resource",
               "source_ip", "detail", "timestamp"]


def ingest(server: Server, key: str, events: list[dict[str, Any]]) -> list[str]:
    r = server.client(key).post("/v1/events", content=orjson.dumps(events))
    assert r.status_code == 201, r.text
    return [d["id"] for d in r.json()["data"]]


def bearer(server: Server, token: str) -> httpx.Client:
    """Headers exactly as the seed's curl line sends them."""
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                        timeout=30)


def page(c: httpx.Client, url: str, **params: Any) -> tuple[dict[str, Any], httpx.Response]:
    r = c.get(url, params=params or None)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    assert list(doc) == ["data", "next_cursor"]
    for rec in doc["data"]:
        assert list(rec) == RECORD_KEYS
    return doc, r


def walk(c: httpx.Client, url: str) -> list[dict[str, Any]]:
    """Follow ``Link: rel="next"`` to the end, checking it agrees with ``next_cursor``."""
    out: list[dict[str, Any]] = []
    while True:
        doc, r = page(c, url)
        out += doc["data"]
        if doc["next_cursor"] is None:
            assert "link" not in r.headers
            return out
        link = r.links["next"]["url"]
        assert link.startswith("http://") and f"cursor={doc['next_cursor']}" in link
        url = link


def ago(hours: float) -> str:
    return format_us(now_us() - int(hours * 3600 * US))


def assert_error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error", "message"] and body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return str(body["message"])


def test_seed_curl_date_window_and_both_paths(server: Server) -> None:
    key = server.key("acme")
    stamps = ["2026-05-31T23:59:59.999Z", "2026-06-01T00:00:00Z", "2026-06-12T08:30:00Z",
              "2026-06-23T23:59:59.999Z", "2026-06-24T00:00:00Z"]
    ingest(server, key, [{"type": "login", "timestamp": t} for t in stamps])
    c = bearer(server, key)
    # curl -H "Authorization: Bearer $API_TOKEN" ".../api/events/v1?from=2026-06-01&to=2026-06-23"
    for path in ("/api/events/v1", "/events/v1"):
        doc, _ = page(c, f"{BASE}{path}?from=2026-06-01&to=2026-06-23")
        # A date in `to` runs through the end of that day; oldest first.
        assert [r["timestamp"] for r in doc["data"]] == stamps[1:4]
        assert doc["next_cursor"] is None
    # Date-times: from inclusive, to exclusive (half-open windows never overlap).
    doc, _ = page(c, f"{BASE}/events/v1", **{"from": "2026-06-01T00:00:00Z",
                                             "to": "2026-06-12T08:30:00Z"})
    assert [r["timestamp"] for r in doc["data"]] == stamps[1:2]
    doc, _ = page(c, f"{BASE}/events/v1", **{"from": "2026-06-12T08:30:00Z"})
    assert [r["timestamp"] for r in doc["data"]] == stamps[2:]
    doc, _ = page(c, f"{BASE}/events/v1", to="2026-06-01T00:00:00+00:00")
    assert [r["timestamp"] for r in doc["data"]] == stamps[:1]
    doc, _ = page(c, f"{BASE}/events/v1")
    assert len(doc["data"]) == 5
    # Row-level security: another organization sees none of it.
    assert page(bearer(server, server.key("globex")), f"{BASE}/events/v1")[0]["data"] == []


def test_flat_record(server: Server) -> None:
    key = server.key("acme")
    ingest(server, key, [
        {"type": "session.created", "timestamp": "2026-06-01T10:00:00Z", "category": "auth",
         "severity": "info", "title": "Session created", "description": "SSO login",
         "actor": {"type": "user", "id": "usr_1", "name": "alice@acme.example",
                   "ip": "203.0.113.9"},
         "subject": {"type": "session", "id": "sess_42"},
         "source": {"ip": "198.51.100.7"}},
        {"type": "vm.deleted", "timestamp": "2026-06-01T10:00:01Z",
         "actor": {"type": "service", "id": "autoscaler", "ip": "10.0.0.5"},
         "subject": {"id": "vm-1"}},
        {"type": "heartbeat", "timestamp": "2026-06-01T10:00:02Z"},
    ])
    doc, _ = page(bearer(server, key), f"{BASE}/api/events/v1")
    full, partial, bare = doc["data"]
    assert full == {"id": full["id"], "action": "session.created", "title": "Session created",
                    "category": "auth", "severity": "info", "actor": "alice@acme.example",
                    "resource": "session:sess_42", "source_ip": "198.51.100.7",
                    "detail": "SSO login", "timestamp": "2026-06-01T10:00:00Z"}
    assert full["id"].startswith("evt_")
    assert (partial["actor"], partial["resource"], partial["source_ip"]) == (
        "autoscaler", "vm-1", "10.0.0.5")
    assert bare == {"id": bare["id"], "action": "heartbeat", "title": None, "category": None,
                    "severity": "info", "actor": None, "resource": None, "source_ip": None,
                    "detail": None, "timestamp": "2026-06-01T10:00:02Z"}


def test_limit_pages_and_link_header(server: Server) -> None:
    key = server.key("acme")
    base = now_us() - 3600 * US
    ids = ingest(server, key, [{"type": "e", "timestamp": format_us(base + i * US)}
                               for i in range(250)])
    c = bearer(server, key)
    doc, r = page(c, f"{BASE}/api/events/v1")
    assert len(doc["data"]) == 100  # default limit
    assert [d["id"] for d in doc["data"]] == ids[:100]  # oldest first
    assert doc["next_cursor"] and r.links["next"]["url"].startswith(server.url)
    assert [d["id"] for d in walk(c, f"{BASE}/api/events/v1?limit=60")] == ids
    assert [d["id"] for d in walk(c, f"{BASE}/events/v1?limit=1000")] == ids
    # Other parameters travel in the Link URL with the cursor.
    since = format_us(base + 200 * US)
    got = walk(c, f"{BASE}/events/v1?limit=7&from={since}")
    assert [d["id"] for d in got] == ids[200:]
    doc, r = page(c, f"{BASE}/events/v1", limit=250)
    assert len(doc["data"]) == 250 and doc["next_cursor"] is None and "link" not in r.headers


def test_walk_is_complete_and_duplicate_free_under_concurrent_ingest(server: Server) -> None:
    key = server.key("acme")
    start = now_us() - 600 * US
    initial = ingest(server, key, [{"type": "before", "timestamp": format_us(start + i * 1000)}
                                   for i in range(400)])
    done = threading.Event()
    added: list[str] = []
    failures: list[str] = []

    def writer() -> None:
        with server.client(key) as w:
            for n in itertools.count():
                if done.is_set() or n >= 200:
                    return
                # Some arrive "now" (ahead of the walk), some inside the already-walked
                # range (behind it), some without a timestamp (server time).
                batch = [{"type": "during", "timestamp": format_us(now_us())},
                         {"type": "during", "timestamp": format_us(start + (n % 400) * 1000)},
                         {"type": "during"}]
                r = w.post("/v1/events", content=orjson.dumps(batch))
                if r.status_code != 201:
                    failures.append(r.text)
                    return
                added.extend(d["id"] for d in r.json()["data"])

    thread = threading.Thread(target=writer)
    thread.start()
    c = bearer(server, key)
    try:
        while len(added) < 6 and thread.is_alive():  # start with ingest under way
            time.sleep(0.001)
        written_before = len(added)
        records = walk(c, f"{BASE}/api/events/v1?limit=10")
        written_during = len(added) - written_before
    finally:
        done.set()
        thread.join(timeout=30)
    assert not failures, failures
    assert written_during > 0, "the writer did not run while the walk did"
    seen = [r["id"] for r in records]
    assert len(seen) == len(set(seen)), "a page repeated an event"
    assert set(initial) <= set(seen), "an event present when the walk began was missed"
    stamps = [parse_time(r["timestamp"]) for r in records]
    assert stamps == sorted(stamps)  # oldest first throughout
    assert set(seen) - set(initial) <= set(added)


def test_jwt_bearer(make_server: Any) -> None:
    srv = make_server(jwt_secret="s3cret-for-tests-only-0123456789abcdef")
    ingest(srv, srv.key("acme"), [{"type": "login", "timestamp": "2026-06-02T00:00:00Z"}])
    token = jwt.encode({"org_id": "acme", "scope": "events:read", "sub": "alice",
                        "exp": int(time.time()) + 600},
                       "s3cret-for-tests-only-0123456789abcdef", algorithm="HS256")
    doc, _ = page(bearer(srv, token), f"{BASE}/events/v1?from=2026-06-01&to=2026-06-30")
    assert [r["action"] for r in doc["data"]] == ["login"]
    expired = jwt.encode({"org_id": "acme", "scope": "events:read", "exp": 1},
                         "s3cret-for-tests-only-0123456789abcdef", algorithm="HS256")
    assert_error(bearer(srv, expired).get(f"{BASE}/events/v1"), 401, "unauthorized")


def test_errors(server: Server) -> None:
    key = server.key("acme")
    c = bearer(server, key)
    url = f"{BASE}/api/events/v1"
    for params in ({"from": "June 1st"}, {"to": "2026-02-30"}, {"limit": "0"},
                   {"limit": "1001"}, {"limit": "ten"}, {"cursor": "not-a-cursor"},
                   {"from": "2026-06-23", "to": "2026-06-01"}, {"since": "2026-06-01"}):
        assert_error(c.get(url, params=params), 400, "invalid_request")
    assert "1000" in assert_error(c.get(url, params={"limit": 1001}), 400, "invalid_request")
    # A cursor of another sort (the native API's newest-first walk) is refused too.
    server.client(key).post("/v1/events", content=b'[{"type":"a"},{"type":"b"}]')
    native = server.client(key).get("/v1/events?limit=1").json()["next_cursor"]
    assert_error(c.get(url, params={"cursor": native}), 400, "invalid_request")
    r = httpx.get(f"{server.url}{url}")
    assert_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    assert_error(bearer(server, "vt_wrong").get(url), 401, "unauthorized")
    assert_error(bearer(server, server.key("acme", "events:write")).get(url), 403, "forbidden")
    assert_error(c.get(f"{BASE}/api/events/v2"), 404, "not_found")


def test_mounted_at_root(make_server: Any) -> None:
    srv = make_server(compat_root="vaultterm")
    key = srv.key("acme")
    ingest(srv, key, [{"type": "login", "timestamp": "2026-06-02T00:00:00Z"}])
    c = bearer(srv, key)
    for path in ("/api/events/v1", "/events/v1"):
        doc, _ = page(c, f"{path}?from=2026-06-01&to=2026-06-23")
        assert [r["action"] for r in doc["data"]] == ["login"]
    assert_error(c.get("/events/v1?limit=0"), 400, "invalid_request")


def test_scope_is_a_setting(make_server: Any) -> None:
    srv = make_server(compat_vaultterm_scope="category:auth -outcome:failure")
    key = srv.key("acme")
    ingest(srv, key, [
        {"type": "login", "category": "auth", "outcome": "success", "timestamp": ago(1)},
        {"type": "login", "category": "auth", "outcome": "failure", "timestamp": ago(2)},
        {"type": "vm.started", "category": "vm", "timestamp": ago(3)},
    ])
    doc, _ = page(bearer(srv, key), f"{BASE}/api/events/v1")
    assert [(r["action"], r["category"]) for r in doc["data"]] == [("login", "auth")]


def test_huge_numbers_are_400s(server: Server) -> None:
    c = bearer(server, server.key("acme"))
    huge = "1" + "0" * 30
    for params in ({"from": huge}, {"to": "1" + "0" * 400}, {"from": "9" * 5000},
                   {"to": "-" + huge}, {"limit": huge}, {"limit": "9" * 5000}):
        msg = assert_error(c.get(f"{BASE}/api/events/v1", params=params), 400,
                           "invalid_request")
        assert next(iter(params)) in msg, msg
