"""Whoever can write the database file is the adversary: every change to what a reader
can see is detected by ``verify``, naming the first bad seq (or the object, for changes to
the file's structure)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from rollback import roll_back

from auditstream.auth.catalog import Catalog
from auditstream.dbapi import sqlite3
from auditstream.integrity import redaction
from auditstream.integrity.canonical import canonical_bytes
from auditstream.integrity.checkpoint import Signer, generate_signer, open_checkpoint, sign_note
from auditstream.integrity.keys import load_or_create_signer
from auditstream.integrity.merkle import leaf_hash
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us, now_us
from auditstream.store.sqlite import SQLiteEventStore
from auditstream.store.sqlite.audit import verify_db

# The log built below: acme has 40 events committed 10 at a time (checkpoints 10, 20,
# 30, 40), seq 7 redacted (its record is seq 41, checkpoint 41) and one event appended
# with an Idempotency-Key (seq 42, checkpoint 42); globex has one event.
REDACTED, RECORD, LAST = 7, 41, 42


def build(db: Path) -> Signer:
    signer = load_or_create_signer(db, "auditstream.local")
    catalog = Catalog(db)
    catalog.create_tenant("acme")
    catalog.create_tenant("globex")
    catalog.close()

    def event(tenant: str, i: int) -> dict[str, object]:
        now = format_us(now_us())
        return {"id": new_event_id(), "tenant": tenant, "timestamp": now, "received_at": now,
                "type": "login", "severity": "info", "title": f"login {i}",
                "description": "user signed in", "actor": {"id": f"u{i}"},
                "metadata": {"n": i}}

    async def run() -> None:
        store = SQLiteEventStore(db, signer=signer, indexed_paths=["actor.id"])
        for start in range(0, 40, 10):  # several commits: several checkpoints
            await store.append("acme", [event("acme", i) for i in range(start, start + 10)])
        await store.append("globex", [event("globex", 0)])
        (victim,) = sqlite3.connect(db).execute(
            "SELECT id FROM events WHERE tenant='acme' AND seq=?", (REDACTED,)).fetchone()
        await store.redact("acme", victim, "erasure request", actor={"type": "test"})
        await store.append("acme", [event("acme", 99)], idempotency_key="k1",
                           request_hash="h1")
        await store.close()

    asyncio.run(run())
    return signer


def body(conn: sqlite3.Connection, seq: int, tenant: str = "acme") -> dict:  # type: ignore[type-arg]
    return dict(orjson.loads(conn.execute(
        "SELECT body FROM events WHERE tenant=? AND seq=?", (tenant, seq)).fetchone()[0]))


def put(conn: sqlite3.Connection, seq: int, ev: dict, *, leaf: bool = False) -> None:  # type: ignore[type-arg]
    raw = canonical_bytes(ev)
    if leaf:
        conn.execute("UPDATE events SET body=?, leaf=? WHERE tenant='acme' AND seq=?",
                     (raw.decode(), leaf_hash(raw), seq))
    else:
        conn.execute("UPDATE events SET body=? WHERE tenant='acme' AND seq=?",
                     (raw.decode(), seq))


def rid(conn: sqlite3.Connection, seq: int) -> int:
    return int(conn.execute("SELECT rid FROM events WHERE tenant='acme' AND seq=?",
                            (seq,)).fetchone()[0])


# -- the tampering, one function per attack ------------------------------------------------


def edit_body(conn: sqlite3.Connection) -> None:
    ev = body(conn, 17)
    ev["actor"]["id"] = "mallory"
    put(conn, 17, ev)


def edit_body_and_leaf(conn: sqlite3.Connection) -> None:
    ev = body(conn, 17)
    ev["metadata"] = {"n": "nothing happened"}
    put(conn, 17, ev, leaf=True)


def edit_title_leaf_and_text(conn: sqlite3.Connection) -> None:
    ev = body(conn, 17)
    ev["title"] = "nothing happened"
    put(conn, 17, ev, leaf=True)
    conn.execute("UPDATE events_fts SET title=? WHERE rowid=?", (ev["title"], rid(conn, 17)))


def delete_middle(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM events_fts WHERE rowid=?", (rid(conn, 17),))
    conn.execute("DELETE FROM events WHERE tenant='acme' AND seq=17")


def delete_last(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM events_fts WHERE rowid=?", (rid(conn, LAST),))
    conn.execute("DELETE FROM events WHERE tenant='acme' AND seq=?", (LAST,))


def swap_rows(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE events SET seq=-1 WHERE tenant='acme' AND seq=17")
    conn.execute("UPDATE events SET seq=17 WHERE tenant='acme' AND seq=18")
    conn.execute("UPDATE events SET seq=18 WHERE tenant='acme' AND seq=-1")


def move_to_other_tenant(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE events SET tenant='globex', seq=2 WHERE tenant='acme' AND seq=17")


def forge_row(conn: sqlite3.Connection) -> None:
    ev = dict(body(conn, 40), seq=LAST + 1, id="evt_forged", title="forged")
    raw = canonical_bytes(ev)
    conn.execute(
        "INSERT INTO events(tenant, seq, id, ts, received, type, category, severity, outcome, "
        "body, leaf, p_actor_id) SELECT tenant, ?, 'evt_forged', ts, received, type, category, "
        "severity, outcome, ?, ?, p_actor_id FROM events WHERE tenant='acme' AND seq=40",
        (LAST + 1, raw.decode(), leaf_hash(raw)))
    conn.execute("INSERT INTO events_fts(rowid, title, description) VALUES "
                 "((SELECT MAX(rid) FROM events), 'forged', 'user signed in')")


def replace_checkpoint(conn: sqlite3.Connection) -> None:
    note = conn.execute("SELECT note FROM checkpoints WHERE tenant='acme' AND size=20"
                        ).fetchone()[0]
    text = note.rpartition("\n\n")[0] + "\n"
    conn.execute("UPDATE checkpoints SET note=? WHERE tenant='acme' AND size=20",
                 (sign_note(text, generate_signer("auditstream.local")),))


def edit_checkpoint_root(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE checkpoints SET root=zeroblob(32) WHERE tenant='acme' AND size=20")


def remove_latest_checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM checkpoints WHERE tenant='acme' AND size=?", (LAST,))


def remove_all_checkpoints(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM checkpoints WHERE tenant='acme'")


def make_stub(conn: sqlite3.Connection, seq: int, *, by: int, at: str = "2026-01-01T00:00:00Z",
              reason: str = "x") -> None:
    """Blank an event as the writer would, without the writer's redaction record."""
    put(conn, seq, redaction.stub_of(body(conn, seq), at=at, reason=reason, by=by))
    conn.execute("DELETE FROM events_fts WHERE rowid=?", (rid(conn, seq),))
    conn.execute("UPDATE events SET p_actor_id=NULL WHERE tenant='acme' AND seq=?", (seq,))


def forge_stub_without_record(conn: sqlite3.Connection) -> None:
    make_stub(conn, 17, by=0)


def forge_stub_naming_real_record(conn: sqlite3.Connection) -> None:
    real = body(conn, REDACTED)["redacted"]
    make_stub(conn, 17, by=RECORD, at=real["at"], reason=real["reason"])


def forge_stub_naming_plain_event(conn: sqlite3.Connection) -> None:
    make_stub(conn, 17, by=20)


def edit_redaction_reason(conn: sqlite3.Connection) -> None:
    stub = body(conn, REDACTED)
    stub["redacted"]["reason"] = "routine cleanup"
    put(conn, REDACTED, stub)


def edit_redaction_kept_field(conn: sqlite3.Connection) -> None:
    stub = body(conn, REDACTED)
    stub["type"] = "heartbeat"
    put(conn, REDACTED, stub)
    conn.execute("UPDATE events SET type='heartbeat' WHERE tenant='acme' AND seq=?",
                 (REDACTED,))


def edit_type_column(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE events SET type='heartbeat' WHERE tenant='acme' AND seq=17")


def edit_severity_column(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE events SET severity=4 WHERE tenant='acme' AND seq=17")


def edit_path_column(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE events SET p_actor_id='someone' WHERE tenant='acme' AND seq=17")


def delete_text_row(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM events_fts WHERE rowid=?", (rid(conn, 17),))


def edit_text_row(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE events_fts SET description='nothing' WHERE rowid=?", (rid(conn, 17),))


def edit_text_content_under_the_index(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE events_fts_content SET c0='other words' WHERE id=?", (rid(conn, 17),))


def add_orphan_text_row(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO events_fts(rowid, title) VALUES (999999, 'planted')")


def inflate_rollup(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE rollup_day SET h12 = h12 + 500000 WHERE tenant='acme'")


def edit_merkle_node(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE merkle_nodes SET hash=zeroblob(32) WHERE tenant='acme' AND level=4 "
                 "AND idx=0")


def edit_idempotency_answer(conn: sqlite3.Connection) -> None:
    row = conn.execute("SELECT response FROM idempotency WHERE key='k1'").fetchone()
    pairs = orjson.loads(row[0])
    conn.execute("UPDATE idempotency SET response=? WHERE key='k1'",
                 (orjson.dumps([[pairs[0][0], 3]]).decode(),))


def add_trigger(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TRIGGER hide AFTER INSERT ON events BEGIN "
                 "UPDATE events SET type='x' WHERE rid=new.rid; END")


def add_index(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE INDEX sneaky ON events(tenant, outcome)")


def hollow_out_an_index(conn: sqlite3.Connection) -> None:
    """Build events_type without seq 17 under a forged definition, then put the honest
    definition back: type filters would silently miss the row."""
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name='events_type'").fetchone()
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("UPDATE sqlite_master SET sql=? WHERE name='events_type'",
                 (sql + " WHERE seq != 17",))
    conn.commit()
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    other = sqlite3.connect(path)
    other.execute("REINDEX events_type")
    other.commit()
    other.close()
    conn.execute("UPDATE sqlite_master SET sql=? WHERE name='events_type'", (sql,))
    conn.execute("PRAGMA writable_schema=OFF")


# (attack, tenant, first bad seq (None: not one seq), what the reason says)
CASES: list[tuple[Callable[[sqlite3.Connection], None], str | None, int | None, str]] = [
    (edit_body, "acme", 17, "edited"),
    (edit_body_and_leaf, "acme", 11, "altered"),
    (edit_title_leaf_and_text, "acme", 11, "altered"),
    (delete_middle, "acme", 17, "missing"),
    (delete_last, "acme", LAST, "truncated"),
    (swap_rows, "acme", 17, "moved"),
    (move_to_other_tenant, "acme", 17, "missing"),
    (forge_row, "acme", LAST + 1, "not covered"),
    (replace_checkpoint, "acme", 20, "not validly signed"),
    (edit_checkpoint_root, "acme", 20, "does not match its stored"),
    (remove_latest_checkpoint, "acme", LAST, "not covered"),
    (remove_all_checkpoints, "acme", 1, "not covered"),
    (forge_stub_without_record, "acme", 17, "no redaction record"),
    (forge_stub_naming_real_record, "acme", REDACTED, "does not match the stubs"),
    (forge_stub_naming_plain_event, "acme", 17, "not a redaction record"),
    (edit_redaction_reason, "acme", REDACTED, "does not match the stubs"),
    (edit_redaction_kept_field, "acme", REDACTED, "does not match the stubs"),
    (edit_type_column, "acme", 17, "column type"),
    (edit_severity_column, "acme", 17, "column severity"),
    (edit_path_column, "acme", 17, "column actor.id"),
    (delete_text_row, "acme", 17, "full-text row"),
    (edit_text_row, "acme", 17, "full-text row"),
    (edit_text_content_under_the_index, None, None, "FTS5"),
    (add_orphan_text_row, None, None, "belongs to no event"),
    (inflate_rollup, "acme", None, "rollup"),
    (edit_merkle_node, "acme", 16, "Merkle node"),
    (edit_idempotency_answer, "acme", None, "Idempotency-Key"),
    (add_trigger, None, None, "unexpected trigger"),
    (add_index, None, None, "unexpected index"),
    (hollow_out_an_index, None, None, "events_type"),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Signer]:
    db = tmp_path_factory.mktemp("pristine") / "t.db"
    return db, build(db)


def copy_of(pristine: tuple[Path, Signer], tmp_path: Path) -> Path:
    db = tmp_path / "t.db"
    src = sqlite3.connect(pristine[0])
    dst = sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.close()
    return db


def test_untouched_log_verifies(pristine: tuple[Path, Signer], tmp_path: Path) -> None:
    db = copy_of(pristine, tmp_path)
    (db.parent / "t.db.signing-key").write_bytes(
        (pristine[0].parent / "t.db.signing-key").read_bytes())
    p = subprocess.run([sys.executable, "-m", "auditstream", "verify", "--db", str(db)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert f"OK: {LAST + 1} events in 2 tenants" in p.stdout and "1 redacted" in p.stdout


@pytest.mark.parametrize(("tamper", "tenant", "seq", "why"), CASES,
                         ids=[c[0].__name__ for c in CASES])
def test_tampering_is_detected(
    pristine: tuple[Path, Signer], tmp_path: Path,
    tamper: Callable[[sqlite3.Connection], None], tenant: str | None, seq: int | None,
    why: str,
) -> None:
    db = copy_of(pristine, tmp_path)
    assert verify_db(db, pristine[1].verifier()).ok
    conn = sqlite3.connect(db)
    tamper(conn)
    conn.commit()
    conn.close()
    rep = verify_db(db, pristine[1].verifier())
    assert not rep.ok
    first = rep.problems[0]
    assert (first.tenant, first.seq) == (tenant, seq), str(first)
    assert why in first.reason, str(first)
    if tamper is move_to_other_tenant:  # the moved row shows in both logs
        assert "moved rows" in next(str(p) for p in rep.problems if p.tenant == "globex")
    else:
        assert not [p for p in rep.problems if p.tenant == "globex"]  # globex's is intact


def test_cli_names_the_bad_seq(pristine: tuple[Path, Signer], tmp_path: Path) -> None:
    db = copy_of(pristine, tmp_path)
    conn = sqlite3.connect(db)
    edit_type_column(conn)
    conn.commit()
    conn.close()
    key = tmp_path / "key.pub"
    key.write_text(pristine[1].verifier_key())
    p = subprocess.run([sys.executable, "-m", "auditstream", "verify", "--db", str(db),
                        "--public-key", str(key)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "seq 17" in p.stderr and "column type" in p.stderr


def test_rollback_is_caught_by_a_checkpoint_kept_elsewhere(
    pristine: tuple[Path, Signer], tmp_path: Path,
) -> None:
    db = copy_of(pristine, tmp_path)
    conn = sqlite3.connect(db)
    kept = conn.execute("SELECT note FROM checkpoints WHERE tenant='acme' AND size=?",
                        (LAST,)).fetchone()[0]
    roll_back(conn, RECORD)
    conn.commit()
    conn.close()
    verifier = pristine[1].verifier()
    # From the file alone, a clean rollback is undetectable: that is what the kept
    # checkpoint is for.
    assert verify_db(db, verifier).ok
    rep = verify_db(db, verifier, external=[open_checkpoint(kept, verifier)])
    first = rep.problems[0]
    assert (first.tenant, first.seq) == ("acme", LAST) and "rolled back" in first.reason

    note = tmp_path / "acme.note"
    note.write_text(kept)
    key = tmp_path / "key.pub"
    key.write_text(pristine[1].verifier_key())
    cmd = [sys.executable, "-m", "auditstream", "verify", "--db", str(db), "--public-key",
           str(key), "--checkpoint", str(note)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "rolled back" in p.stderr


def test_a_fork_is_caught_by_a_checkpoint_kept_elsewhere(
    pristine: tuple[Path, Signer], tmp_path: Path,
) -> None:
    """Roll back the newest event, then write other events in their place through the real writer:
    every stored checkpoint is genuine and consistent, but the kept one is not in it."""
    db = copy_of(pristine, tmp_path)
    (db.parent / "t.db.signing-key").write_bytes(
        (pristine[0].parent / "t.db.signing-key").read_bytes())
    conn = sqlite3.connect(db)
    kept = conn.execute("SELECT note FROM checkpoints WHERE tenant='acme' AND size=?",
                        (LAST,)).fetchone()[0]
    roll_back(conn, RECORD)
    conn.commit()
    conn.close()

    async def rewrite() -> None:
        store = SQLiteEventStore(db, signer=pristine[1], indexed_paths=["actor.id"])
        now = format_us(now_us())
        await store.append("acme", [{"id": new_event_id(), "tenant": "acme", "timestamp": now,
                                     "received_at": now, "type": "benign", "severity": "info"}
                                    for _ in range(3)])
        await store.close()

    asyncio.run(rewrite())
    verifier = pristine[1].verifier()
    assert verify_db(db, verifier).ok
    rep = verify_db(db, verifier, external=[open_checkpoint(kept, verifier)])
    first = rep.problems[0]
    assert (first.tenant, first.seq) == ("acme", LAST) and "forks" in first.reason


def test_a_rollback_past_a_redaction_is_caught_from_the_file_alone(
    pristine: tuple[Path, Signer], tmp_path: Path,
) -> None:
    db = copy_of(pristine, tmp_path)
    conn = sqlite3.connect(db)
    roll_back(conn, 30)
    conn.commit()
    conn.close()
    first = verify_db(db, pristine[1].verifier()).problems[0]
    assert (first.tenant, first.seq) == ("acme", REDACTED)
    assert "not a redaction record" in first.reason
