"""A credential belongs to one tenant and never writes or pages another's log, whatever
its scopes; a token naming a tenant that does not exist writes nowhere."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import jwt
import orjson
import pytest

from conftest import Server

SECRET = "s3cret-for-tests-only-0123456789abcdef"


def token(tenant: Any, scope: str = "events:read events:write admin") -> str:
    return jwt.encode({"sub": "u1", "org_id": tenant, "scope": scope,
                       "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def count(srv: Server, tenant: str) -> int:
    return len(srv.client(srv.key(tenant)).get("/v1/events?limit=1000").json()["data"])


@pytest.mark.parametrize("body", [
    {"type": "x", "tenant": "globex"},
    [{"type": "x"}, {"type": "y", "tenant": "globex"}],
], ids=["object", "array"])
def test_admin_key_of_one_tenant_cannot_write_into_another(
    make_server: Any, body: Any,
) -> None:
    srv = make_server(jwt_secret=SECRET)
    admin = srv.client(srv.key("acme", "admin"))
    srv.key("globex")
    r = admin.post("/v1/events", content=orjson.dumps(body))
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert any(e["field"] == "tenant" for e in r.json()["errors"])
    r = srv.client().post("/v1/events", content=orjson.dumps(body),
                          headers=bearer(token("acme")))
    assert r.status_code == 403
    assert count(srv, "globex") == 0 and count(srv, "acme") == 0


def test_one_foreign_ndjson_line_stores_nothing(server: Server) -> None:
    admin = server.client(server.key("acme", "admin"))
    server.key("globex")
    nd = b'{"type":"a"}\n{"type":"b","tenant":"globex"}\n{"type":"c"}\n'
    r = admin.post("/v1/events", content=nd, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 403 and r.json()["errors"][0]["index"] == 1
    assert count(server, "acme") == 0 and count(server, "globex") == 0
    # Naming one's own tenant is fine.
    r = admin.post("/v1/events", content=b'{"type":"a","tenant":"acme"}')
    assert r.status_code == 201 and count(server, "acme") == 1


def test_token_naming_an_unknown_tenant_writes_nowhere(make_server: Any) -> None:
    srv = make_server(jwt_secret=SECRET)
    c = srv.client()
    r = c.post("/v1/events", content=b'{"type":"x"}', headers=bearer(token("ghost")))
    assert r.status_code == 403 and "does not exist" in r.json()["detail"]
    assert c.get("/v1/events", headers=bearer(token("ghost"))).status_code == 403
    assert "ghost" not in srv.catalog.tenants()


@pytest.mark.parametrize("claim", ["acme\x00evil", "a/b", "", " acme", "x" * 64, 5, ["acme"]])
def test_token_with_a_malformed_tenant_claim_is_refused(make_server: Any, claim: Any) -> None:
    srv = make_server(jwt_secret=SECRET, jwt_create_tenants=True)
    r = srv.client().post("/v1/events", content=b'{"type":"x"}', headers=bearer(token(claim)))
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert srv.catalog.tenants() == []


def test_tokens_may_create_tenants_when_the_deployment_says_so(make_server: Any) -> None:
    srv = make_server(jwt_secret=SECRET, jwt_create_tenants=True)
    r = srv.client().post("/v1/events", content=b'{"type":"x"}', headers=bearer(token("newco")))
    assert r.status_code == 201 and "newco" in srv.catalog.tenants()


def test_a_cursor_of_another_tenant_is_refused(server: Server) -> None:
    a = server.client(server.key("acme"))
    b = server.client(server.key("globex"))
    a.post("/v1/events", content=orjson.dumps([{"type": "x"}] * 3))
    b.post("/v1/events", content=orjson.dumps([{"type": "x"}] * 3))
    cur = a.get("/v1/events?limit=1").json()["next_cursor"]
    assert a.get("/v1/events", params={"cursor": cur}).status_code == 200
    r = b.get("/v1/events", params={"cursor": cur})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "cursor"
    assert "another tenant" in r.json()["detail"]


@pytest.mark.parametrize("key", [2**63, -(2**63) - 1, 10**30, 1.5, True, "1"])
def test_forged_cursor_values_are_a_400(server: Server, key: Any) -> None:
    c = server.client(server.key("acme"))
    tag = hashlib.sha256(b"acme").hexdigest()[:12]
    raw = json.dumps({"s": "timestamp", "o": "desc", "k": [key, 1], "t": tag}).encode()
    cur = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    r = c.get("/v1/events", params={"cursor": cur})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "cursor"
    # The profiles page with the same cursors, and answer in their own shapes.
    r = c.get("/compat/platform-audit/v1/audit/events", params={"cursor": cur})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "cursor"]
    r = c.get("/compat/authpi/v1/accounts/acme/events", params={"cursor": cur})
    assert r.status_code == 400
