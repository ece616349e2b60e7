"""Two auditstream nodes over one ClickHouse: each node sequences its own tenants in its own
log (its database file) and both read every tenant from the shared index.

What runs here: two real servers with their own log files, sharing one ClickHouse through
real HTTP requests. They share one process, because the only ClickHouse this machine has is
embedded chdb, which opens its data in one process at a time; two processes on two hosts
against a ClickHouse server run the same code through ``http://`` URLs (not run here: no
ClickHouse server is available, see docs/scale-out.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
