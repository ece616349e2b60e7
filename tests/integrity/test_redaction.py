"""Redaction and retention purge: content erased, proofs kept, and each erasure recorded in
the signed log, where the offline bundle verifier checks it too."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditstream.dbapi import sqlite3
from auditstream.integrity.bundle import write_bundle
from auditstream.integrity.keys import load_or_create_signer
from auditstream.store.sqlite import SQLiteEventStore
from auditstream.store.sqlite.audit import verify_db
from auditstream.verifier import verify_bundle


def post(c: Any, body: Any, **kw: Any) -> Any:
    return c.post("/v1/events", content=orjson.dumps(body), **kw)


def test_redaction_is_an_entry_of_the_signed_log(server: Any) -> None:
    admin = server.client(server.key("acme", "admin"))
    ids = [d["id"] for d in post(admin, [
        {"type": "secret.read", "title": "read the vault", "actor": {"id": "alice"}},
        {"type": "login", "title": "kept"}]).json()["data"]]
    r = admin.post(f"/v1/events/{ids[0]}/redact", json={"reason": "GDPR erasure"})
    assert r.status_code == 200
    stub = r.json()
    assert "title" not in stub and "actor" not in stub and stub["type"] == "secret.read"
    assert stub["redacted"]["reason"] == "GDPR erasure" and stub["redacted"]["by"] == 3
    record = admin.get("/v1/events", params={"type": "auditstream.redaction"}).json()["data"]
    assert len(record) == 1 and record[0]["seq"] == 3
    assert record[0]["subject"] == {"type": "event", "id": ids[0], "seq": 1}
    assert record[0]["actor"]["type"] == "api_key"
    assert record[0]["payload"]["redaction"]["count"] == 1
    # Search no longer finds the content; asking again changes nothing.
    assert admin.get("/v1/events", params={"q": "vault"}).json()["data"] == []
    assert admin.post(f"/v1/events/{ids[0]}/redact", json={"reason": "again"}).json() == stub
    assert len(admin.get("/v1/events").json()["data"]) == 3
    # The record itself cannot be redacted, and no producer can write one.
    r = admin.post(f"/v1/events/{record[0]['id']}/redact", json={})
    assert r.status_code == 409
    for body, ctype in (({"type": "auditstream.redaction"}, "application/json"),
                        ([{"type": "x"}, {"type": "auditstream.anything"}], "application/json"),
                        (None, "application/x-ndjson")):
        content = (orjson.dumps(body) if body is not None
                   else b'{"type":"x"}\n{"type":"auditstream.redaction"}\n')
        r = admin.post("/v1/events", content=content, headers={"Content-Type": ctype})
        assert r.status_code == 400 and any(e["field"] == "type" for e in r.json()["errors"])
    assert len(admin.get("/v1/events").json()["data"]) == 3
    assert admin.get(f"/v1/events/{ids[0]}?include=proof").json()["proof"]["leaf_index"] == 0


def build(db: Path, n: int = 30) -> Any:
    signer = load_or_create_signer(db, "auditstream.local")
    from auditstream.auth.catalog import Catalog

    catalog = Catalog(db)
    catalog.create_tenant("acme")
    catalog.close()

    async def run() -> None:
        store = SQLiteEventStore(db, signer=signer)
        store.PURGE_CHUNK = 4  # several chunks, several records
        from auditstream.model.ids import new_event_id
        from auditstream.model.times import format_us

        evs = [{"id": new_event_id(), "tenant": "acme",
                "timestamp": format_us(1_700_000_000_000_000 + i * 60_000_000),
                "received_at": format_us(1_700_000_000_000_000), "type": "login",
                "severity": "info", "title": f"login {i}"} for i in range(n)]
        await store.append("acme", evs)
        await store.redact("acme", evs[3]["id"], "erasure")
        assert await store.purge("acme", 1_700_000_000_000_000 + 10 * 60_000_000,
                                 "retention") == 9  # 0..9 but 3, which was redacted
        await store.close()

    asyncio.run(run())
    return signer


def export(db: Path, signer: Any, out: Path) -> Path:
    async def run() -> None:
        store = SQLiteEventStore(db, signer=signer)
        with out.open("wb") as f:
            await write_bundle(store, "acme", f, signer.verifier())
        await store.close()

    asyncio.run(run())
    return out


def test_purge_in_chunks_each_recorded_and_verified(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    signer = build(db)
    conn = sqlite3.connect(db)
    records = [orjson.loads(b) for (b,) in conn.execute(
        "SELECT body FROM events WHERE type='auditstream.redaction' ORDER BY seq")]
    conn.close()
    assert [r["payload"]["redaction"]["count"] for r in records] == [1, 4, 4, 1]
    assert all("before" in r["payload"]["redaction"] for r in records[1:])
    rep = verify_db(db, signer.verifier())
    assert rep.ok, rep.problems
    assert rep.redacted == 10 and rep.events == 34


def test_bundle_checks_redactions_offline(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    signer = build(db)
    out = export(db, signer, tmp_path / "acme.bundle")
    with out.open("rb") as f:
        rep = verify_bundle(f, signer.verifier_key())
    assert rep.ok, rep.errors
    assert rep.redacted == 10 and rep.events == 34

    lines = out.read_bytes().splitlines()
    item = orjson.loads(lines[1 + 4])  # seq 5: purged
    assert "redacted" in item["event"]
    item["event"]["redacted"]["reason"] = "nothing to see"
    lines[5] = orjson.dumps(item)
    rep = verify_bundle(lines, signer.verifier_key())
    assert not rep.ok and "redaction record does not match" in rep.errors[0]


def test_bundle_cli_verifies_offline_and_detects_edits(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    signer = build(db)
    out = tmp_path / "acme.bundle"
    p = subprocess.run([sys.executable, "-m", "auditstream", "export", "--bundle", "--tenant",
                        "acme", "--out", str(out), "--db", str(db)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    vkey = tmp_path / "key.pub"
    vkey.write_text(signer.verifier_key())
    cmd = [sys.executable, "-m", "auditstream", "verify", "--bundle", str(out),
           "--public-key", str(vkey)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "34 events (10 redacted)" in p.stdout

    lines = out.read_bytes().splitlines()
    item = orjson.loads(lines[20])
    item["event"]["title"] = "rewritten"
    lines[20] = orjson.dumps(item)
    out.write_bytes(b"\n".join(lines) + b"\n")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "seq 20" in p.stderr


def test_bundle_verifier_imports_no_server_code() -> None:
    code = ("import sys, auditstream.verifier; "
            "bad = [m for m in sys.modules if m.startswith('auditstream.') "
            "and m != 'auditstream.verifier']; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("stub_edit", ["forge", "restore"])
def test_bundle_refuses_forged_or_restored_stubs(tmp_path: Path, stub_edit: str) -> None:
    db = tmp_path / "f.db"
    signer = build(db)
    out = export(db, signer, tmp_path / "acme.bundle")
    lines = out.read_bytes().splitlines()
    if stub_edit == "forge":  # seq 20 made a stub naming the last purge record
        item = orjson.loads(lines[20])
        leaf = orjson.loads(lines[21])  # any redacted line's leaf won't do: use its own
        del leaf
        from auditstream.integrity.canonical import canonical_bytes
        from auditstream.integrity.merkle import leaf_hash

        ev = item["event"]
        item["leaf_hash"] = __import__("base64").b64encode(
            leaf_hash(canonical_bytes(ev))).decode()
        item["event"] = {k: ev[k] for k in ("id", "tenant", "seq", "timestamp",
                                            "received_at", "type", "severity")}
        item["event"]["redacted"] = {"at": "2026-01-01T00:00:00Z", "reason": "x", "by": 34}
        lines[20] = orjson.dumps(item)
    else:  # a purged line without its stub marker: its leaf hash no longer matches
        item = orjson.loads(lines[5])
        item["event"].pop("redacted")
        item.pop("leaf_hash")
        lines[5] = orjson.dumps(item)
    rep = verify_bundle(lines, signer.verifier_key())
    assert not rep.ok
