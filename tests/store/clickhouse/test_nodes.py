"""Two auditstream nodes over one ClickHouse: each node sequences its own tenants in its own
log (its database file) and both read every tenant from the shared index.

What runs here: two real servers with their own log files, sharing one ClickHouse through
real HTTP requests. They share one process, because the only ClickHouse this machine has is
embedded chdb, which opens its data in one process at a time; two processes on two hosts
against a ClickHouse server run the same code through ``http://`` URLs (not run here: no
ClickHouse server is available, see docs/scale-out.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from tests.conftest import free_port
from websockets.sync.client import connect

from auditstream.store.clickhouse.audit import verify_index
from auditstream.store.clickhouse.engine import Engine

SECRET = "s3cret-for-tests-only-0123456789abcdef"


def test_each_node_reads_what_the_other_appended(make_server: Any, tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'shared-ch'}?database=cluster"
    a = make_server(db=str(tmp_path / "node-a.db"), backend="clickhouse", clickhouse_url=url)
    b = make_server(db=str(tmp_path / "node-b.db"), backend="clickhouse", clickhouse_url=url)
    # acme's home is node a, globex's is node b; each node's catalog has a reader key.
    acme_a, acme_b = a.key("acme"), b.key("acme", "events:read")
    globex_b, globex_a = b.key("globex"), a.key("globex", "events:read")

    with a.client(acme_a) as ca, b.client(acme_b) as cb:
        r = ca.post("/v1/events", json=[{"type": "login", "title": f"acme {i}"}
                                        for i in range(5)])
        assert r.status_code == 201, r.text
        appended = [(x["id"], x["seq"]) for x in r.json()["data"]]
        page = cb.get("/v1/events", params={"order": "asc"}).json()
        assert [(e["id"], e["seq"]) for e in page["data"]] == appended
        one = cb.get(f"/v1/events/{appended[2][0]}")
        assert one.status_code == 200 and one.json()["title"] == "acme 2"
        assert cb.get("/v1/events", params={"q": "acme 4"}).json()["data"][0]["seq"] == 5

    with b.client(globex_b) as cb, a.client(globex_a) as ca:
        r = cb.post("/v1/events", json={"type": "install", "title": "globex"})
        assert r.status_code == 201, r.text
        assert [e["title"] for e in ca.get("/v1/events").json()["data"]] == ["globex"]
        # Tenant walls hold across nodes: acme's key on b sees no globex event.
    with b.client(acme_b) as cb:
        assert all(e["tenant"] == "acme" for e in cb.get("/v1/events").json()["data"])


def _two_nodes(make_server: Any, tmp_path: Path, *, a: dict[str, Any] | None = None,
               b: dict[str, Any] | None = None, homes: str = "acme=a,*=b",
               extra_nodes: str = "") -> tuple[Any, Any]:
    """Nodes a and b over one index, with one tenant map: acme's home is a, every other
    tenant's is b."""
    pa, pb = free_port(), free_port()
    nodes = f"a=http://127.0.0.1:{pa},b=http://127.0.0.1:{pb}{extra_nodes}"
    common = {"backend": "clickhouse", "nodes": nodes, "tenant_homes": homes,
              "clickhouse_url": f"chdb://{tmp_path / 'shared-ch'}?database=cluster"}
    na = make_server(db=str(tmp_path / "node-a.db"), port=pa, node="a", **common, **(a or {}))
    nb = make_server(db=str(tmp_path / "node-b.db"), port=pb, node="b", **common, **(b or {}))
    return na, nb


def test_an_append_to_a_node_that_is_not_the_tenants_home_is_redirected(
        make_server: Any, tmp_path: Path) -> None:
    a, b = _two_nodes(make_server, tmp_path)
    on_b = b.key("acme", "events:read", "events:write", "admin")
    with b.client(on_b) as cb:
        r = cb.post("/v1/events?source=sdk", json=[{"type": "login", "title": "to b"}],
                    headers={"Idempotency-Key": "k1"})
        assert r.status_code == 307, r.text
        assert r.headers["location"] == f"{a.url}/v1/events?source=sdk"
        problem = r.json()
        assert problem["type"].endswith("/elsewhere-home") and problem["home"] == "a"
        # Nothing was sequenced anywhere: not on b, and the index shows nothing.
        assert cb.get("/v1/events").json()["data"] == []
    # The client re-sends to the Location, with a key a knows: a sequences it.
    with httpx.Client(headers={"X-API-Key": a.key("acme")}) as direct:
        r = direct.post(r.headers["location"],
                        json=[{"type": "login", "title": "to a"}])
        assert r.status_code == 201, r.text
        event_id = r.json()["data"][0]["id"]
        assert r.json()["data"][0]["seq"] == 1
    with b.client(on_b) as cb:
        assert [e["title"] for e in cb.get("/v1/events").json()["data"]] == ["to a"]
        # Redaction writes a record in the log: also the home's job.
        r = cb.post(f"/v1/events/{event_id}/redact", json={"reason": "gdpr"})
        assert r.status_code == 307, r.text
        assert r.headers["location"] == f"{a.url}/v1/events/{event_id}/redact"
        # The Location repeats the path and query as sent: an encoded CR LF stays encoded.
        r = cb.post("/v1/events?x=%0D%0ASet-Cookie:%20a=1", json={"type": "login"})
        assert r.status_code == 307 and "set-cookie" not in r.headers, r.text
        assert r.headers["location"] == f"{a.url}/v1/events?x=%0D%0ASet-Cookie:%20a=1"
        assert cb.get(f"/v1/events/{event_id}").json()["title"] == "to a"
        # The tree and the signed checkpoints are in the home's log: b sends there too.
        for path in ("/v1/integrity/checkpoint",
                     f"/v1/integrity/proof/inclusion?event_id={event_id}",
                     "/v1/integrity/proof/consistency?from=0"):
            r = cb.get(path)
            assert r.status_code == 307 and r.headers["location"] == a.url + path, r.text
    # b's own tenants are appended on b as before.
    with b.client(b.key("globex")) as cb:
        assert cb.post("/v1/events", json={"type": "login"}).status_code == 201
    # Each node proves the index rows of its own tenants against its log; the other
    # node's tenants are not reported as rows its log lacks.
    engine = Engine(a.settings.clickhouse_url, clients=1)
    try:
        for node in (a, b):
            assert verify_index(engine, node.settings.db, homes=node.settings.homes) == []
        # Without the map, b would claim acme and find its log behind the index.
        assert "beyond the log" in str(verify_index(engine, b.settings.db)[0])
    finally:
        engine.close()


def test_a_node_forwards_an_append_to_the_home_and_relays_its_answer(
        make_server: Any, tmp_path: Path) -> None:
    jwt_settings = {"jwt_secret": SECRET, "jwt_create_tenants": True}
    a, b = _two_nodes(make_server, tmp_path, a=jwt_settings,
                      b={**jwt_settings, "forward_appends": True})
    token = jwt.encode({"sub": "u1", "org_id": "acme", "scope": "events:read events:write",
                        "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(headers=auth, timeout=30) as c:
        r = c.post(f"{b.url}/v1/events", json=[{"type": "login", "title": f"fwd {i}"}
                                               for i in range(3)],
                   headers={"Idempotency-Key": "batch-1"})
        assert r.status_code == 201, r.text
        first = r.json()["data"]
        assert [x["seq"] for x in first] == [1, 2, 3]
        assert r.headers["content-type"] == "application/json"
        assert len(r.headers.get_list("date")) == 1
        # A retry through b is the home's idempotent replay, not new events.
        again = c.post(f"{b.url}/v1/events", json=[{"type": "login", "title": f"fwd {i}"}
                                                   for i in range(3)],
                       headers={"Idempotency-Key": "batch-1"})
        assert again.status_code == 200 and again.json()["data"] == first
        for node in (a, b):
            page = c.get(f"{node.url}/v1/events", params={"order": "asc"}).json()["data"]
            assert [(e["id"], e["seq"]) for e in page] == [(x["id"], x["seq"]) for x in first]
        # Reads of the home's log (checkpoints, proofs) are forwarded too: b answers what a
        # answers, and the proof checks against a's checkpoint.
        for path in ("/v1/integrity/checkpoint",
                     f"/v1/integrity/proof/inclusion?event_id={first[1]['id']}"):
            via_b, from_a = c.get(b.url + path), c.get(a.url + path)
            assert via_b.status_code == 200 and via_b.content == from_a.content, via_b.text
        # A request that was forwarded once is never forwarded again: maps that disagree
        # between nodes cannot bounce an append around.
        r = c.post(f"{b.url}/v1/events", json={"type": "login"},
                   headers={"X-Auditstream-Forwarded-By": "c"})
        assert r.status_code == 307 and r.headers["location"] == f"{a.url}/v1/events"
        # A bad body is refused where it arrives, before any node is asked.
        r = c.post(f"{b.url}/v1/events", content=b"{nope", headers={
            "Content-Type": "application/json"})
        assert r.status_code == 400 and r.headers["content-type"].startswith(
            "application/problem+json")
        assert len(c.get(f"{a.url}/v1/events").json()["data"]) == 3


def test_a_forward_to_a_home_that_is_down_is_a_503_and_stores_nothing(
        make_server: Any, tmp_path: Path) -> None:
    _, b = _two_nodes(make_server, tmp_path, b={"forward_appends": True}, homes="acme=c,*=b",
                      extra_nodes=f",c=http://127.0.0.1:{free_port()}")
    with b.client(b.key("acme")) as cb:
        r = cb.post("/v1/events", json={"type": "login"})
        assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
        assert cb.get("/v1/events").json()["data"] == []


def test_a_second_node_appending_for_the_same_tenant_is_stopped(
        make_server: Any, tmp_path: Path) -> None:
    # A map that is wrong on one node: both a and b think they are acme's home.
    url = f"chdb://{tmp_path / 'shared-ch'}?database=cluster"
    a = make_server(db=str(tmp_path / "node-a.db"), backend="clickhouse", clickhouse_url=url)
    b = make_server(db=str(tmp_path / "node-b.db"), backend="clickhouse", clickhouse_url=url)
    with a.client(a.key("acme")) as ca:
        assert ca.post("/v1/events", json=[{"type": "login", "title": "a"}] * 3
                       ).status_code == 201
    with b.client(b.key("acme")) as cb:
        r = cb.post("/v1/events", json={"type": "login", "title": "b"})
        assert r.status_code == 503, r.text
        # b wrote nothing: the index still holds a's three events, seqs 1..3, once each.
        page = cb.get("/v1/events", params={"order": "asc"}).json()["data"]
        assert [(e["seq"], e["title"]) for e in page] == [(1, "a"), (2, "a"), (3, "a")]
    with a.client(a.key("acme")) as ca:  # the rightful home goes on
        assert ca.post("/v1/events", json={"type": "login"}).json()["data"][0]["seq"] == 4


def test_a_live_stream_on_another_node_gets_the_homes_events(make_server: Any,
                                                             tmp_path: Path) -> None:
    # The commit feed is per process: node b hears of acme's commits on a by polling the
    # index's watermark (once a second), and streams them in order like its own.
    a, b = _two_nodes(make_server, tmp_path)
    token = b.key("acme", "events:read")
    with connect(b.url.replace("http://", "ws://") + f"/v1/events/stream?token={token}",
                 open_timeout=10) as ws:
        ws.send(orjson.dumps({"type": "subscribe", "filters": {"type": ["login"]}}).decode())
        assert _next(ws, "subscribed")["tenant"] == "acme"
        with a.client(a.key("acme")) as ca:
            r = ca.post("/v1/events", json=[{"type": "login", "title": "1"}, {"type": "noise"},
                                            {"type": "login", "title": "2"}])
            assert r.status_code == 201
        got = [_next(ws, "event") for _ in range(2)]
        assert [(e["seq"], e["event"]["title"]) for e in got] == [(1, "1"), (3, "2")]


def _next(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        msg: dict[str, Any] = orjson.loads(ws.recv(timeout=10))
        if msg["type"] == kind:
            return msg
        assert msg["type"] == "heartbeat", msg
