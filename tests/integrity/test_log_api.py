"""Integrity routes against a real server: checkpoints, proofs, redaction."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from auditstream.integrity import merkle
from auditstream.integrity.canonical import canonical_bytes
from auditstream.integrity.checkpoint import open_checkpoint
from conftest import Server


def b(s: str) -> bytes:
    return base64.b64decode(s)


def ingest(c: Any, n: int, start: int = 0) -> list[str]:
    r = c.post("/v1/events", content=orjson.dumps(
        [{"type": "login", "title": f"event {start + i}", "actor": {"id": f"u{i % 7}"}}
         for i in range(n)]))
    assert r.status_code == 201
    return [d["id"] for d in r.json()["data"]]


def test_checkpoint_inclusion_and_consistency(server: Server) -> None:
    c = server.client(server.key("acme"))
    vkey = c.get("/v1/integrity/public-key").text.strip()
    name, kid, key = vkey.split("+", 2)
    assert name == "auditstream.local" and len(bytes.fromhex(kid)) == 4
    assert b(key)[0] == 1 and len(b(key)) == 33
    ids = ingest(c, 13)
    ids += ingest(c, 8, 13)
    cp = open_checkpoint(c.get("/v1/integrity/checkpoint").text, vkey)
    assert cp.origin == "auditstream.local/acme" and cp.size == 21

    for i, eid in enumerate(ids):
        p = c.get("/v1/integrity/proof/inclusion", params={"event_id": eid}).json()
        assert p["leaf_index"] == i and p["tree_size"] == 21
        ev = c.get(f"/v1/events/{eid}").json()
        leaf = merkle.leaf_hash(canonical_bytes(ev))
        assert b(p["leaf_hash"]) == leaf
        path = [b(h) for h in p["inclusion_path"]]
        assert merkle.verify_inclusion(leaf, i, 21, path, cp.root)
        assert open_checkpoint(p["checkpoint"], vkey).root == cp.root
    old = c.get("/v1/integrity/proof/inclusion", params={"event_id": ids[2], "tree_size": 13})
    p13 = old.json()
    cp13 = open_checkpoint(p13["checkpoint"], vkey)
    assert cp13.size == 13
    assert merkle.verify_inclusion(b(p13["leaf_hash"]), 2, 13,
                                   [b(h) for h in p13["inclusion_path"]], cp13.root)

    for first, second in [(0, 21), (1, 21), (13, 21), (7, 13), (21, 21), (5, None)]:
        params: dict[str, int] = {"from": first}
        if second is not None:
            params["to"] = second
        cons = c.get("/v1/integrity/proof/consistency", params=params).json()
        to = second or 21
        assert cons["from"] == first and cons["to"] == to
        assert merkle.verify_consistency(first, to, b(cons["from_root"]), b(cons["to_root"]),
                                         [b(h) for h in cons["consistency_path"]])
    assert b(c.get("/v1/integrity/proof/consistency", params={"from": 13, "to": 21})
             .json()["from_root"]) == cp13.root

    withproof = c.get(f"/v1/events/{ids[5]}", params={"include": "proof"}).json()
    assert withproof["proof"]["leaf_index"] == 5


def test_proof_errors_and_isolation(server: Server) -> None:
    a = server.client(server.key("acme"))
    other = server.client(server.key("globex"))
    ids = ingest(a, 3)
    r = a.get("/v1/integrity/proof/inclusion", params={"event_id": ids[2], "tree_size": 2})
    assert r.status_code == 400
    assert a.get("/v1/integrity/proof/inclusion").status_code == 400
    assert a.get("/v1/integrity/proof/inclusion",
                 params={"event_id": ids[0], "tree_size": 99}).status_code == 400
    assert a.get("/v1/integrity/proof/consistency",
                 params={"from": 3, "to": 2}).status_code == 400
    assert a.get("/v1/integrity/proof/consistency", params={"from": "x"}).status_code == 400
    assert other.get("/v1/integrity/proof/inclusion",
                     params={"event_id": ids[0]}).status_code == 404
    empty = other.get("/v1/integrity/checkpoint").text
    assert empty.split("\n")[:2] == ["auditstream.local/globex", "0"]


def test_redaction_keeps_proofs(server: Server) -> None:
    admin = server.client(server.key("acme", "admin"))
    user = server.client(server.key("acme"))
    vkey = user.get("/v1/integrity/public-key").text.strip()
    ids = ingest(user, 5)
    assert user.post(f"/v1/events/{ids[1]}/redact").status_code == 403
    r = admin.post(f"/v1/events/{ids[1]}/redact", json={"reason": "GDPR erasure request"})
    assert r.status_code == 200
    ev = user.get(f"/v1/events/{ids[1]}").json()
    assert ev["redacted"]["reason"] == "GDPR erasure request" and "title" not in ev
    assert "actor" not in ev and ev["seq"] == 2
    assert user.get("/v1/events", params={"q": '"event 1"'}).json()["data"] == []
    p = user.get("/v1/integrity/proof/inclusion", params={"event_id": ids[1]}).json()
    cp = open_checkpoint(p["checkpoint"], vkey)
    assert merkle.verify_inclusion(b(p["leaf_hash"]), 1, 5,
                                   [b(h) for h in p["inclusion_path"]], cp.root)
    assert admin.post("/v1/events/evt_nope/redact").status_code == 404
