"""Red-team attacks against a real server (tests/conftest.py ``make_server``) and the CLI.

Each asserts the claimed property against an attack that was tried; see
test_attack_verify_db.py.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest

from auditstream.auth.catalog import hash_key
from auditstream.dbapi import sqlite3

SECRET = "s3cret-for-red-team-tests-0123456789abcdef"



def verify_cli(db: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auditstream", "verify", "--db", db, *extra],
                          capture_output=True, text=True, timeout=120)


def token(tenant: Any, scope: str = "events:read events:write admin", secret: str = SECRET,
          **claims: Any) -> str:
    return jwt.encode({"sub": "u1", "org_id": tenant, "scope": scope,
                       "exp": int(time.time()) + 600, **claims}, secret, algorithm="HS256")


def ev(i: int, **kw: Any) -> dict[str, Any]:
    return {"type": "login", "title": f"login {i}", "actor": {"id": f"u{i}"},
            "source": {"issuer_id": "iss-1"}, "context": {"user_id": f"user{i}"},
            "llm": {"provider": "p", "model": "m", "cost_usd": 1, "input_tokens": 1,
                    "output_tokens": 1}, "tags": ["t"], **kw}


# -- CLI purge -------------------------------------------------------------------------------


def test_cli_purge_keeps_the_log_valid_and_writable(make_server: Any, tmp_path: Path) -> None:
    srv = make_server()
    key = srv.key("acme")
    c = srv.client(key)
    assert c.post("/v1/events", json=[ev(i) for i in range(5)]).status_code == 201
    db = srv.settings.db
    assert verify_cli(db).returncode == 0
    p = subprocess.run([sys.executable, "-m", "auditstream", "purge", "--db", db, "--tenant",
                        "acme", "--before", "2099-01-01", "--reason", "retention"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "purged 5" in p.stdout, p.stderr
    after = c.post("/v1/events", json=[ev(9)])
    v = verify_cli(db)
    assert after.status_code == 201, (after.status_code, after.text[:200])
    assert v.returncode == 0, v.stderr


def test_purge_racing_ingest_from_another_process_loses_nothing(tmp_path: Path) -> None:
    """HELD (with a signer, as the server's store has): a purge in another process, in chunks
    of 7, while this process appends; every event is kept or stubbed, and verify is OK."""
    import asyncio

    from attack_harness import PATHS, build, event, verify

    from auditstream.store.sqlite import SQLiteEventStore

    db = tmp_path / "race.db"
    signer = build(db)
    script = tmp_path / "purge.py"
    script.write_text(
        "import asyncio, sys\n"
        "from auditstream.integrity.keys import load_or_create_signer\n"
        "from auditstream.store.sqlite import SQLiteEventStore\n"
        "db = sys.argv[1]\n"
        "async def run():\n"
        "    st = SQLiteEventStore(db, signer=load_or_create_signer(db, 'auditstream.local'),"
        " indexed_paths=['actor.id'])\n"
        "    st.PURGE_CHUNK = 7\n"
        "    n = 0\n"
        "    for _ in range(3):\n"
        "        n += await st.purge('acme', 4102444800000000, 'retention',\n"
        "                            actor={'type': 'cli'})\n"
        "    await st.close()\n"
        "    print(n)\n"
        "asyncio.run(run())\n")

    async def run() -> int:
        st = SQLiteEventStore(db, signer=signer, indexed_paths=PATHS)
        proc = subprocess.Popen([sys.executable, str(script), str(db)])
        n = 0
        while n < 300:  # appends of purgeable (old-enough) events, racing the purge
            await st.append("acme", [event("acme", i) for i in range(3)])
            n += 3
        await st.close()
        assert proc.wait(timeout=300) == 0
        return n

    n = asyncio.run(run())
    assert verify(db, signer) == []
    conn = sqlite3.connect(db)
    total, = conn.execute("SELECT COUNT(*) FROM events WHERE tenant='acme' AND "
                          "type != 'auditstream.redaction'").fetchone()
    assert total == 21 + n  # 20 built + the Idempotency-Key one + n appended: none lost


# -- duplicate JSON keys, seen through the real routes ----------------------------------------


def test_duplicate_key_seen_through_native_and_compat_routes(make_server: Any) -> None:
    srv = make_server()
    key = srv.key("acme")
    c = srv.client(key)
    r = c.post("/v1/events", json=[ev(i) for i in range(4)])
    target = r.json()["data"][2]["id"]
    db = srv.settings.db
    conn = sqlite3.connect(db)
    raw = conn.execute("SELECT body FROM events WHERE id=?", (target,)).fetchone()[0]
    conn.execute("UPDATE events SET body=? WHERE id=?", (
        '{"source":{"issuer_id":"evil-issuer"},"llm":{"cost_usd":5000},' + raw[1:], target))
    conn.commit()
    conn.close()
    v = verify_cli(db)
    shown = c.get(f"/v1/events/{target}").json()
    assert shown["source"]["issuer_id"] == "iss-1" and shown["llm"]["cost_usd"] == 1
    authpi = c.get("/compat/authpi/v1/accounts/acme/events?issuer_id=evil-issuer").json()
    agg = c.get("/v1/events/aggregate?sum=llm.cost_usd").json()
    assert [e["id"] for e in authpi["data"]] == [target]
    assert "5003" in orjson.dumps(agg).decode()
    assert v.returncode != 0, v.stdout


# -- the catalog (documented as out of scope) --------------------------------------------------


def test_catalog_write_mints_a_credential_whose_writes_are_signed(make_server: Any) -> None:
    """OUT OF SCOPE by the docs, but real: a row inserted into api_keys is a working admin
    key; through it the file-writer gets genuine, signed events and redactions into any
    tenant's log, which verify cannot tell from honest ones."""
    srv = make_server()
    victim = srv.client(srv.key("acme"))
    eid = victim.post("/v1/events", json=[ev(1)]).json()["data"][0]["id"]
    secret = "sk_live_" + base64.urlsafe_b64encode(hashlib.sha256(b"m").digest()).decode()
    conn = sqlite3.connect(srv.settings.db)
    conn.execute("INSERT INTO api_keys(id, tenant, hash, hint, scopes, name, created) VALUES "
                 "('key_support', 'acme', ?, 'sk_live_x', 'admin', 'support', 0)",
                 (hash_key(secret),))
    conn.commit()
    conn.close()
    mal = srv.client(secret)
    assert mal.post(f"/v1/events/{eid}/redact", json={"reason": "routine"}).status_code == 200
    assert mal.post("/v1/events", json=[ev(2, title="all clear")]).status_code == 201
    assert verify_cli(srv.settings.db).returncode == 0


# -- producers cannot forge log entries -------------------------------------------------------


@pytest.mark.parametrize("body", [
    {"type": "auditstream.redaction", "payload": {"redaction": {"count": 0, "digest":
                                                               hashlib.sha256().hexdigest()}}},
    {"type": "x", "redacted": {"at": "2024-01-01T00:00:00Z", "reason": "r", "by": 99}},
    {"type": "x", "seq": 1},
], ids=["record-type", "redacted-field", "seq-field"])
def test_producer_cannot_forge_a_record_or_a_stub(make_server: Any, body: Any) -> None:
    """HELD: reserved type and the server's fields are refused, natively and via NDJSON."""
    srv = make_server()
    c = srv.client(srv.key("acme", "admin"))
    assert c.post("/v1/events", json=body).status_code == 400
    r = c.post("/v1/events", content=orjson.dumps(body),
               headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 400
    assert c.get("/v1/events").json()["data"] == []


def test_record_cannot_be_redacted_and_stub_redact_is_a_no_op(make_server: Any) -> None:
    srv = make_server()
    c = srv.client(srv.key("acme", "admin"))
    eid = c.post("/v1/events", json=[ev(1)]).json()["data"][0]["id"]
    assert c.post(f"/v1/events/{eid}/redact", json={"reason": "a"}).status_code == 200
    rec = c.get("/v1/events?type=auditstream.redaction").json()["data"][0]
    assert c.post(f"/v1/events/{rec['id']}/redact", json={"reason": "b"}).status_code == 409
    assert c.post(f"/v1/events/{eid}/redact", json={"reason": "b"}).status_code == 200
    assert len(c.get("/v1/events?type=auditstream.redaction").json()["data"]) == 1
    assert verify_cli(srv.settings.db).returncode == 0


# -- tenant walls -------------------------------------------------------------------------------


def test_tenant_walls_hold_for_admin_key_and_jwt(make_server: Any) -> None:
    """HELD: an admin credential of acme (API key, then JWT) against globex's ids, cursor,
    idempotency key, sizes, account path and every read route."""
    srv = make_server(jwt_secret=SECRET)
    b = srv.client(srv.key("globex"))
    secret_ev = [ev(i, title=f"globex-secret {i}") for i in range(60)]
    r = b.post("/v1/events", json=secret_ev[:3], headers={"Idempotency-Key": "K"})
    b_ids = [d["id"] for d in r.json()["data"]]
    b.post("/v1/events", json=secret_ev[3:])
    b_cursor = b.get("/v1/events?limit=1").json()["next_cursor"]
    a_key = srv.key("acme", "admin")
    for headers in ({"Authorization": f"Bearer {token('acme')}"}, {"X-API-Key": a_key}):
        a = srv.client()
        a.headers.update(headers)
        a.post("/v1/events", json=[ev(100)])
        bid = b_ids[0]
        assert a.get(f"/v1/events/{bid}").status_code == 404
        assert a.get(f"/v1/integrity/proof/inclusion?event_id={bid}").status_code == 404
        assert a.post(f"/v1/events/{bid}/redact", json={"reason": "x"}).status_code == 404
        assert a.get(f"/v1/events?limit=1&cursor={b_cursor}").status_code == 400
        assert a.get("/v1/integrity/proof/consistency?from=1&to=50").status_code == 400
        assert a.get(f"/compat/authpi/v1/accounts/globex/events/{bid}").status_code == 403
        assert a.get("/compat/authpi/v1/accounts/globex/events").status_code == 403
        assert a.get(f"/compat/authpi/v1/accounts/acme/events/{bid}").status_code == 404
        for path in ("/v1/events?limit=1000", "/v1/events/export?format=ndjson",
                     "/v1/llm/events", "/compat/turen/api/v1/events?limit=100",
                     "/compat/turqoa/v1/events?per_page=100",
                     "/compat/platform-audit/v1/audit/events?limit=200",
                     "/compat/vaultterm/api/events/v1?limit=100",
                     "/compat/authpi/v1/accounts/acme/events?limit=100"):
            r = a.get(path)
            assert r.status_code == 200 and "globex-secret" not in r.text, path
        n_acme = len(a.get("/v1/events?limit=1000").json()["data"])
        agg = a.get("/v1/events/aggregate").json()
        assert orjson.dumps(agg).decode().count(f'"count":{n_acme}') >= 1, agg
        if "X-API-Key" in headers:
            # (last credential only) globex's client id and Idempotency-Key: new acme events.
            same = a.post("/v1/events", json=[dict(ev(0), id=bid)])
            assert same.status_code == 201 and same.json()["data"][0]["seq"] > 1
            idem = a.post("/v1/events", json=[ev(i) for i in range(3)],
                          headers={"Idempotency-Key": "K"})
            assert idem.status_code == 201 and not set(d["id"] for d in idem.json()["data"]) \
                & set(b_ids)
    # A token for globex signed with another secret or alg none, or naming two tenants: 401.
    for bad in (token("globex", secret="x" * 40), token(["acme", "globex"]),
                jwt.encode({"org_id": "globex", "exp": int(time.time()) + 60}, None,  # type: ignore[arg-type]
                           algorithm="none")):
        r = srv.client().get("/v1/events", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401


# -- pull writes what the server serves -----------------------------------------------------------


def test_pull_writes_edited_content_it_never_proves(make_server: Any, tmp_path: Path) -> None:
    """OBSERVATION: pull checks the checkpoint extends the kept one, not the events: an event
    edited in the file (leaf untouched) is pulled into the SIEM feed as is, exit 0."""
    from auditstream.cli_export import pull

    srv = make_server()
    key = srv.key("acme")
    c = srv.client(key)
    c.post("/v1/events", json=[ev(i) for i in range(3)])
    state, out = tmp_path / "s.json", tmp_path / "o.ndjson"
    pull(srv.url, key, state, out)
    eid = c.post("/v1/events", json=[ev(7)]).json()["data"][0]["id"]
    conn = sqlite3.connect(srv.settings.db)
    conn.execute("UPDATE events SET body=replace(body, '\"u7\"', '\"nobody\"') WHERE id=?",
                 (eid,))
    conn.commit()
    conn.close()
    pull(srv.url, key, state, out)
    last = orjson.loads(out.read_bytes().splitlines()[-1])
    assert last["id"] == eid and last["actor"]["id"] == "nobody"
    assert verify_cli(srv.settings.db).returncode == 1  # verify --db does catch it
