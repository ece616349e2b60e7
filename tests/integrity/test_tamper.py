"""Every kind of tampering with the database file is detected, naming the seq."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from auditstream.auth.catalog import Catalog
from auditstream.dbapi import sqlite3
from auditstream.integrity.audit import verify_db
from auditstream.integrity.bundle import write_bundle
from auditstream.integrity.checkpoint import Signer, generate_signer, sign_note
from auditstream.integrity.keys import load_or_create_signer
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us, now_us
from auditstream.store.sqlite import SQLiteEventStore
from auditstream.store.sqlite.ledger import leaf_of


def build(db: Path, n: int = 40) -> Signer:
    signer = load_or_create_signer(db, "auditstream.local")
    catalog = Catalog(db)
    catalog.create_tenant("acme")
    catalog.create_tenant("globex")
    catalog.close()

    async def run() -> None:
        store = SQLiteEventStore(db, signer=signer)
        for start in range(0, n, 10):  # several commits: several checkpoints
            evs = [{"id": new_event_id(), "tenant": "acme", "timestamp": format_us(now_us()),
                    "received_at": format_us(now_us()), "type": "login", "severity": "info",
                    "title": f"login {i}", "actor": {"id": f"u{i}"}}
                   for i in range(start, start + 10)]
            await store.append("acme", evs)
        await store.append("globex", [{"id": new_event_id(), "tenant": "globex",
                                       "timestamp": format_us(now_us()),
                                       "received_at": format_us(now_us()), "type": "x",
                                       "severity": "info"}])
        await store.close()

    asyncio.run(run())
    return signer


def body(conn: sqlite3.Connection, seq: int) -> dict:  # type: ignore[type-arg]
    return dict(orjson.loads(conn.execute(
        "SELECT body FROM events WHERE tenant='acme' AND seq=?", (seq,)).fetchone()[0]))


def edit_field(conn: sqlite3.Connection) -> None:
    ev = body(conn, 17)
    ev["actor"]["id"] = "mallory"
    conn.execute("UPDATE events SET body=? WHERE tenant='acme' AND seq=17",
                 (orjson.dumps(ev).decode(),))


def edit_field_and_leaf(conn: sqlite3.Connection) -> None:
    ev = body(conn, 17)
    ev["title"] = "nothing happened"
    conn.execute("UPDATE events SET body=?, leaf=? WHERE tenant='acme' AND seq=17",
                 (orjson.dumps(ev).decode(), leaf_of(ev)))


def delete_row(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM events WHERE tenant='acme' AND seq=17")


def swap_rows(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE events SET seq=-1 WHERE tenant='acme' AND seq=17")
    conn.execute("UPDATE events SET seq=17 WHERE tenant='acme' AND seq=18")
    conn.execute("UPDATE events SET seq=18 WHERE tenant='acme' AND seq=-1")


def forge_row(conn: sqlite3.Connection) -> None:
    ev = dict(body(conn, 40), seq=41, id="evt_forged", title="forged")
    conn.execute(
        "INSERT INTO events(tenant, seq, id, ts, received, type, severity, body, leaf) "
        "SELECT tenant, 41, 'evt_forged', ts, received, type, severity, ?, ? FROM events "
        "WHERE tenant='acme' AND seq=40", (orjson.dumps(ev).decode(), leaf_of(ev)))


def truncate_tail(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM events WHERE tenant='acme' AND seq > 35")


def replace_checkpoint(conn: sqlite3.Connection) -> None:
    size, note = conn.execute(
        "SELECT size, note FROM checkpoints WHERE tenant='acme' ORDER BY size LIMIT 1 OFFSET 1"
    ).fetchone()
    body_ = note.rpartition("\n\n")[0] + "\n"
    conn.execute("UPDATE checkpoints SET note=? WHERE tenant='acme' AND size=?",
                 (sign_note(body_, generate_signer("auditstream.local")), size))


CASES: list[tuple[Callable[[sqlite3.Connection], None], int, str]] = [
    (edit_field, 17, "edited"),
    (edit_field_and_leaf, 11, "altered"),
    (delete_row, 17, "missing"),
    (swap_rows, 17, "moved"),
    (forge_row, 41, "not covered"),
    (truncate_tail, 36, "truncated"),
    (replace_checkpoint, 20, "not validly signed"),
]


def test_untouched_log_verifies(tmp_path: Path) -> None:
    db = tmp_path / "ok.db"
    build(db)
    p = subprocess.run([sys.executable, "-m", "auditstream", "verify", "--db", str(db)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "OK: 41 events in 2 tenants" in p.stdout


@pytest.mark.parametrize(("tamper", "seq", "why"), CASES, ids=[c[0].__name__ for c in CASES])
def test_tampering_is_detected(tmp_path: Path, tamper: Callable[[sqlite3.Connection], None],
                               seq: int, why: str) -> None:
    db = tmp_path / "t.db"
    signer = build(db)
    conn = sqlite3.connect(db)
    tamper(conn)
    conn.commit()
    conn.close()
    rep = verify_db(db, signer.verifier())
    assert not rep.ok
    first = rep.problems[0]
    assert (first.tenant, first.seq) == ("acme", seq), str(first)
    assert why in first.reason
    assert all(p.tenant == "acme" for p in rep.problems)  # globex's log is intact


def test_cli_names_the_bad_seq(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    build(db)
    conn = sqlite3.connect(db)
    edit_field(conn)
    conn.commit()
    conn.close()
    p = subprocess.run([sys.executable, "-m", "auditstream", "verify", "--db", str(db)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "seq 17" in p.stderr


def test_bundle_verifies_offline_and_detects_edits(tmp_path: Path) -> None:
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
    assert "40 events" in p.stdout

    lines = out.read_bytes().splitlines()
    item = orjson.loads(lines[5])
    item["event"]["title"] = "rewritten"
    lines[5] = orjson.dumps(item)
    out.write_bytes(b"\n".join(lines) + b"\n")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "seq 5" in p.stderr

    other = generate_signer("auditstream.local").verifier_key()
    p = subprocess.run(cmd[:-1] + [other], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "not signed by this key" in p.stderr


def test_bundle_verifier_imports_no_server_code() -> None:
    code = ("import sys, auditstream.verifier; "
            "bad = [m for m in sys.modules if m.startswith('auditstream.') "
            "and m != 'auditstream.verifier']; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_redacted_event_still_proves_in_db_and_bundle(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    signer = build(db)

    async def redact() -> None:
        store = SQLiteEventStore(db, signer=signer)
        conn = sqlite3.connect(db)
        eid = conn.execute("SELECT id FROM events WHERE tenant='acme' AND seq=7").fetchone()[0]
        conn.close()
        assert (await store.redact("acme", eid, "erasure"))["redacted"]["reason"] == "erasure"
        await store.close()

    asyncio.run(redact())
    rep = verify_db(db, signer.verifier())
    assert rep.ok and rep.redacted == 1
    out = tmp_path / "r.bundle"
    with out.open("wb") as f:
        write_bundle(db, "acme", f, signer)
    from auditstream.verifier import verify_bundle

    with out.open("rb") as f:
        brep = verify_bundle(f, signer.verifier_key())
    assert brep.ok and brep.redacted == 1 and brep.events == 40


def test_retention_purge_keeps_proofs(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    signer = build(db)
    conn = sqlite3.connect(db)
    cutoff = conn.execute("SELECT ts FROM events WHERE tenant='acme' AND seq=21").fetchone()[0]
    conn.close()
    from auditstream.model.times import format_us as fmt

    p = subprocess.run([sys.executable, "-m", "auditstream", "purge", "--tenant", "acme",
                        "--before", fmt(cutoff), "--db", str(db)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    conn = sqlite3.connect(db)
    purged = conn.execute("SELECT COUNT(*) FROM events WHERE tenant='acme' "
                          "AND body LIKE '%\"redacted\"%'").fetchone()[0]
    kept = orjson.loads(conn.execute(
        "SELECT body FROM events WHERE tenant='acme' AND seq=21").fetchone()[0])
    conn.close()
    assert purged >= 1 and "title" in kept
    rep = verify_db(db, signer.verifier())
    assert rep.ok and rep.redacted == purged
