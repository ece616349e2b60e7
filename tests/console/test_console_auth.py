"""The console's credentials over real HTTP: the session cookie and its CSRF token, viewer
tokens held to their tenant, their filter and reading, and the admin routes of keys and
users. One server for the module; each test works in its own tenant."""

from __future__ import annotations

import itertools
from contextlib import closing
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from auditstream.auth.catalog import Catalog
from conftest import Server

PASSWORD = "correct-horse-battery"
_tenants = itertools.count()


@pytest.fixture
def tenant(shared_server: Server) -> str:
    name = f"t{next(_tenants)}"
    shared_server.catalog.create_tenant(name)
    return name


def user(server: Server, tenant: str, *scopes: str) -> str:
    name = f"{tenant}-user-{'-'.join(s.replace(':', '') for s in scopes) or 'r'}"
    server.catalog.create_user(tenant, name, PASSWORD, list(scopes) or ["events:read"])
    return name


def signed_in(server: Server, tenant: str, *scopes: str) -> tuple[httpx.Client, str]:
    """A client holding a session cookie, and the session's CSRF token."""
    client = server.client()
    r = client.post("/v1/session", json={"username": user(server, tenant, *scopes),
                                         "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client, r.json()["csrf_token"]


def ingest(server: Server, tenant: str, events: list[dict[str, Any]]) -> list[str]:
    with server.client(server.key(tenant)) as c:
        r = c.post("/v1/events", json=events)
        assert r.status_code == 201, r.text
        return [d["id"] for d in r.json()["data"]]


# ------------------------------------------------------------------ sign-in


def test_sign_in_sets_an_httponly_strict_cookie_and_reads_with_it(
        shared_server: Server, tenant: str) -> None:
    ingest(shared_server, tenant, [{"type": "login"}])
    client, csrf = signed_in(shared_server, tenant)
    with closing(client):
        cookie = client.cookies.jar
        (c,) = list(cookie)
        assert c.name == "auditstream_session" and c.value.startswith("ss_")
        assert c.has_nonstandard_attr("HttpOnly")
        assert c.get_nonstandard_attr("SameSite") == "strict" and c.path == "/"
        me = client.get("/v1/session")
        assert me.status_code == 200
        assert me.json()["tenant"] == tenant and me.json()["csrf_token"] == csrf
        assert client.get("/v1/events").json()["data"][0]["type"] == "login"


@pytest.mark.parametrize("password", ["wrong-password-here", ""])
def test_a_wrong_password_or_unknown_user_is_401_and_sets_nothing(
        shared_server: Server, tenant: str, password: str) -> None:
    name = user(shared_server, tenant)
    with shared_server.client() as c:
        for body in ({"username": name, "password": password},
                     {"username": "nobody-" + tenant, "password": PASSWORD}):
            r = c.post("/v1/session", json=body)
            assert r.status_code in (400, 401), r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert "set-cookie" not in r.headers


@pytest.mark.parametrize("body,ctype", [
    ("username=a&password=b", "application/x-www-form-urlencoded"),
    ('{"username": "a", "password": "b"}', "text/plain"),
])
def test_sign_in_refuses_what_a_cross_site_form_can_send(
        shared_server: Server, body: str, ctype: str) -> None:
    with shared_server.client() as c:
        r = c.post("/v1/session", content=body, headers={"Content-Type": ctype})
        assert r.status_code == 415 and "set-cookie" not in r.headers


@pytest.mark.parametrize("body", [b"[]", b"{", b'{"username": 1, "password": "x"}',
                                  b'{"username": "a"}'])
def test_a_malformed_sign_in_is_400(shared_server: Server, body: bytes) -> None:
    with shared_server.client() as c:
        r = c.post("/v1/session", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["errors"], r.text


# ------------------------------------------------------------------ CSRF


def test_a_write_with_the_cookie_and_no_csrf_token_is_refused_and_changes_nothing(
        shared_server: Server, tenant: str) -> None:
    client, csrf = signed_in(shared_server, tenant, "admin")
    with closing(client):
        before = client.get("/v1/keys").json()["data"]
        for headers in ({}, {"X-CSRF-Token": "0" * 64}, {"X-CSRF-Token": csrf[:-1]}):
            r = client.post("/v1/keys", json={"name": "x"}, headers=headers)
            assert r.status_code == 403, r.text
            assert "CSRF" in r.json()["detail"]
            r = client.post("/v1/events", json={"type": "x"}, headers=headers)
            assert r.status_code == 403
            assert client.delete("/v1/session", headers=headers).status_code == 403
        assert client.get("/v1/keys").json()["data"] == before
        assert client.get("/v1/events").json()["data"] == []
        made = client.post("/v1/keys", json={"name": "x"}, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201 and made.json()["key"].startswith("sk_live_")


def test_another_sessions_csrf_token_does_not_fit(shared_server: Server, tenant: str) -> None:
    mine, _ = signed_in(shared_server, tenant, "admin")
    theirs_client, theirs = signed_in(shared_server, tenant, "events:read")
    with closing(mine), closing(theirs_client):
        r = mine.post("/v1/keys", json={}, headers={"X-CSRF-Token": theirs})
        assert r.status_code == 403


def test_sign_out_ends_the_session_everywhere(shared_server: Server, tenant: str) -> None:
    client, csrf = signed_in(shared_server, tenant)
    with closing(client):
        secret = client.cookies["auditstream_session"]
        r = client.delete("/v1/session", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and r.json() == {"signed_out": True}
        assert 'auditstream_session=""' in r.headers["set-cookie"] or \
            "Max-Age=0" in r.headers["set-cookie"]
    with shared_server.client() as c:  # the old cookie, replayed
        r = c.get("/v1/events", headers={"Cookie": f"auditstream_session={secret}"})
        assert r.status_code == 401


def test_a_session_expires(db_path: Any) -> None:
    now = [1_000_000.0]
    catalog = Catalog(db_path, wall=lambda: now[0])
    catalog.create_tenant("t")
    catalog.create_user("t", "u", PASSWORD)
    principal = catalog.authenticate_user("u", PASSWORD)
    assert principal is not None
    secret, expires = catalog.create_session(principal, 3600)
    assert catalog.authenticate_session(secret) == principal
    now[0] = expires
    assert catalog.authenticate_session(secret) is None
    catalog.close()


def test_the_websocket_stream_does_not_take_the_cookie(shared_server: Server,
                                                       tenant: str) -> None:
    """A page of another site could open a WebSocket that carries the cookie, and a
    handshake has no CSRF token: the stream wants a token of its own."""
    client, _ = signed_in(shared_server, tenant)
    with closing(client):
        secret = client.cookies["auditstream_session"]
    url = shared_server.url.replace("http://", "ws://") + "/v1/events/stream"
    with connect(url, additional_headers={"Cookie": f"auditstream_session={secret}"},
                 open_timeout=10) as ws:
        ws.send(orjson.dumps({"type": "subscribe"}).decode())
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_the_sse_stream_takes_the_cookie(shared_server: Server, tenant: str) -> None:
    client, _ = signed_in(shared_server, tenant)
    with closing(client), client.stream("GET", "/v1/events/stream",
                               headers={"Accept": "text/event-stream"}) as r:
        assert r.status_code == 200
        assert next(r.iter_lines()).startswith(": subscribed")


# ------------------------------------------------------------------ viewer tokens


def bearer(server: Server, token: str, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30.0,
                        headers={"Authorization": f"Bearer {token}", **headers})


def viewer(server: Server, tenant: str, q: str | None = None, **body: Any) -> str:
    with server.client(server.key(tenant, "admin")) as c:
        r = c.post("/v1/viewer-tokens", json={"q": q, **body} if q else body)
        assert r.status_code == 201, r.text
        doc = r.json()
        assert doc["tenant"] == tenant and doc["embed_url"].endswith(doc["token"])
        return str(doc["token"])


def test_a_viewer_token_reads_only_within_its_filter(shared_server: Server,
                                                     tenant: str) -> None:
    acme, other = ingest(shared_server, tenant, [
        {"type": "login", "context": {"org_id": "acme"}, "title": "acme in"},
        {"type": "login", "context": {"org_id": "globex"}, "title": "globex in"},
    ])
    token = viewer(shared_server, tenant, "context.org_id:acme")
    with bearer(shared_server, token) as c:
        assert [e["id"] for e in c.get("/v1/events").json()["data"]] == [acme]
        # No parameter widens it: each is ANDed with the token's filter.
        for params in ({"q": "context.org_id:globex"}, {"q": "type:login OR -type:login"},
                       {"context.org_id": "globex"}, {"q": "*"}):
            r = c.get("/v1/events", params=params)
            assert other not in [e["id"] for e in r.json().get("data", [])], params
        assert c.get(f"/v1/events/{acme}").status_code == 200
        assert c.get(f"/v1/events/{acme}?include=proof").json()["proof"]["tree_size"] >= 2
        assert c.get(f"/v1/events/{other}").status_code == 404
        assert c.get(f"/v1/events/{other}?include=proof").status_code == 404
        agg = c.get("/v1/events/aggregate", params={"group_by": "context.org_id"}).json()
        assert [r["key"] for b in agg["buckets"] for r in b["rows"]] == ["acme"]
        export = c.get("/v1/events/export", params={"format": "ndjson"})
        assert [orjson.loads(line)["id"] for line in export.text.splitlines()] == [acme]


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/v1/events", [{"type": "x"}]),
    ("POST", "/v1/viewer-tokens", {}),
    ("GET", "/v1/keys", None),
    ("POST", "/v1/keys", {}),
    ("GET", "/v1/users", None),
    ("GET", "/v1/stats/summary", None),
    ("GET", "/v1/llm/events", None),
    ("GET", "/v1/integrity/proof/inclusion?event_id=evt_x", None),
    ("GET", "/v1/integrity/checkpoint", None),
    ("GET", "/compat/turen/api/v1/events", None),
    ("GET", "/compat/vaultterm/api/events/v1", None),
    ("GET", "/compat/authpi/v1/accounts/a/events", None),
    ("GET", "/compat/platform-audit/v1/audit/events", None),
    ("GET", "/compat/turqoa/api/v1/events", None),
])
def test_a_viewer_token_cannot_write_or_reach_past_its_routes(
        shared_server: Server, tenant: str, method: str, path: str, body: Any) -> None:
    token = viewer(shared_server, tenant, "type:login")
    with bearer(shared_server, token) as c:
        r = c.request(method, path, json=body)
        # 401 where a compat profile knows only its own credentials (platform-audit).
        assert r.status_code in (401, 403), (path, r.status_code, r.text)
    with shared_server.client(shared_server.key(tenant)) as c:
        assert c.get("/v1/events").json()["data"] == []  # nothing was written


def test_a_viewer_token_cannot_open_the_live_stream(shared_server: Server,
                                                    tenant: str) -> None:
    token = viewer(shared_server, tenant)
    with bearer(shared_server, token, Accept="text/event-stream") as c:
        assert c.get("/v1/events/stream").status_code == 403
    url = shared_server.url.replace("http://", "ws://") + f"/v1/events/stream?token={token}"
    with connect(url, open_timeout=10) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


@pytest.mark.parametrize("body,field", [
    ({"q": "type:("}, "q"), ({"q": 5}, "q"), ({"ttl_seconds": 10}, "ttl_seconds"),
    ({"ttl_seconds": 10**9}, "ttl_seconds"), ({"ttl_seconds": True}, "ttl_seconds"),
    ({"ttl_seconds": "900"}, "ttl_seconds"),
])
def test_a_bad_viewer_token_request_is_400(shared_server: Server, tenant: str,
                                           body: dict[str, Any], field: str) -> None:
    with shared_server.client(shared_server.key(tenant, "admin")) as c:
        r = c.post("/v1/viewer-tokens", json=body)
        assert r.status_code == 400, r.text
        assert [e["field"] for e in r.json()["errors"]] == [field]


def test_only_an_admin_makes_viewer_tokens(shared_server: Server, tenant: str) -> None:
    with shared_server.client(shared_server.key(tenant, "events:read")) as c:
        assert c.post("/v1/viewer-tokens", json={}).status_code == 403


def test_a_viewer_token_is_revoked_by_its_tenants_admin_only(shared_server: Server,
                                                               tenant: str) -> None:
    other = tenant + "-o"
    shared_server.catalog.create_tenant(other)
    with shared_server.client(shared_server.key(tenant, "admin")) as c:
        made = c.post("/v1/viewer-tokens", json={}).json()
    with bearer(shared_server, made["token"]) as v:
        assert v.get("/v1/events").status_code == 200
        assert v.delete(f"/v1/viewer-tokens/{made['id']}").status_code == 403
    with shared_server.client(shared_server.key(other, "admin")) as c:
        assert c.delete(f"/v1/viewer-tokens/{made['id']}").status_code == 404
    with shared_server.client(shared_server.key(tenant, "admin")) as c:
        r = c.delete(f"/v1/viewer-tokens/{made['id']}")
        assert r.status_code == 200 and r.json() == {"id": made["id"], "revoked": True}
        assert c.delete(f"/v1/viewer-tokens/{made['id']}").status_code == 404
    with bearer(shared_server, made["token"]) as v:
        assert v.get("/v1/events").status_code == 401


def test_a_viewer_token_expires(db_path: Any) -> None:
    now = [1_000_000.0]
    catalog = Catalog(db_path, wall=lambda: now[0])
    catalog.create_tenant("t")
    made = catalog.create_viewer_token("t", "type:login", 60, "test")
    viewer_principal = catalog.authenticate_viewer(made["token"])
    assert viewer_principal is not None and viewer_principal.where == "type:login"
    assert viewer_principal.scopes == frozenset({"events:read"})
    now[0] += 60
    assert catalog.authenticate_viewer(made["token"]) is None
    catalog.close()


# ------------------------------------------------------------------ keys and users


def test_keys_are_listed_created_and_revoked_within_the_tenant(
        shared_server: Server, tenant: str) -> None:
    other = tenant + "-other"
    shared_server.catalog.create_tenant(other)
    foreign = shared_server.catalog.create_key(other, ["events:read"]).id
    with shared_server.client(shared_server.key(tenant, "admin")) as c:
        made = c.post("/v1/keys", json={"name": "ci", "scopes": ["events:read"]})
        assert made.status_code == 201 and made.json()["scopes"] == ["events:read"]
        listed = c.get("/v1/keys").json()["data"]
        assert all("key" not in k for k in listed)
        assert {k["tenant"] for k in listed} == {tenant}
        assert c.delete(f"/v1/keys/{foreign}").status_code == 404
        r = c.delete(f"/v1/keys/{made.json()['id']}")
        assert r.status_code == 200 and r.json()["revoked"]
        assert c.delete(f"/v1/keys/{made.json()['id']}").status_code == 404
        assert c.post("/v1/keys", json={"scopes": ["root"]}).status_code == 400
    with shared_server.client(made.json()["key"]) as c:
        assert c.get("/v1/events").status_code == 401
    with shared_server.client(shared_server.key(other, "admin")) as c:
        keys = c.get("/v1/keys").json()["data"]
        assert any(k["id"] == foreign and not k["revoked"] for k in keys)


def test_users_are_created_and_listed_within_the_tenant(shared_server: Server,
                                                        tenant: str) -> None:
    with shared_server.client(shared_server.key(tenant, "admin")) as c:
        r = c.post("/v1/users", json={"username": f"{tenant}-ann", "password": PASSWORD,
                                      "scopes": ["events:read"]})
        assert r.status_code == 201, r.text
        assert c.post("/v1/users", json={"username": f"{tenant}-ann",
                                         "password": PASSWORD}).status_code == 409
        assert c.post("/v1/users", json={"username": f"{tenant}-bob",
                                         "password": "short"}).status_code == 400
        assert [u["username"] for u in c.get("/v1/users").json()["data"]] == [f"{tenant}-ann"]
    with shared_server.client() as c:
        assert c.post("/v1/session", json={"username": f"{tenant}-ann",
                                           "password": PASSWORD}).status_code == 200
