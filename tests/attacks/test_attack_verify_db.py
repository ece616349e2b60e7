"""Red-team attacks on ``auditstream verify --db`` by whoever can write the database file.

Each test asserts the *claimed* property against an attack that was tried. Some were holes
when the red team found them (duplicate JSON keys, idempotency answers, the path map, a
trigger typed 'TRIGGER', the key beside the file) and are caught now.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from attack_harness import (
    PATHS,
    AggregateSpec,
    All,
    body,
    build,
    copy,
    event,
    put_raw,
    read,
    seqs_matching,
    verify,
)

from auditstream.auth.catalog import Catalog
from auditstream.dbapi import sqlite3
from auditstream.integrity.checkpoint import Signer, generate_signer
from auditstream.query.filter import Eq, Text
from auditstream.store.sqlite import SQLiteEventStore


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Signer]:
    db = tmp_path_factory.mktemp("pristine") / "p.db"
    return db, build(db)


@pytest.fixture
def db(pristine: tuple[Path, Signer], tmp_path: Path) -> Path:
    return copy(pristine[0], tmp_path / "t.db")


@pytest.fixture
def signer(pristine: tuple[Path, Signer]) -> Signer:
    return pristine[1]


# -- 1. duplicate JSON keys: orjson (verify, GET) reads the last, SQLite JSON the first ----


def test_duplicate_key_body_changes_what_filters_and_aggregates_see(
    db: Path, signer: Signer,
) -> None:
    conn = sqlite3.connect(db)
    raw = conn.execute("SELECT body FROM events WHERE tenant='acme' AND seq=12").fetchone()[0]
    assert body(conn, 12)["context"]["user_id"] == "user2"
    forged = ('{"context":{"user_id":"mallory"},"llm":{"cost_usd":1000000},"tags":["secret"],'
              + raw[1:])
    put_raw(conn, 12, forged)
    conn.commit()
    conn.close()
    problems = verify(db, signer)

    async def reads(st: SQLiteEventStore) -> dict[str, object]:
        agg = await st.aggregate("acme", All(), AggregateSpec(metrics=(("sum", "llm.cost_usd"),)))
        return {
            "mallory": await seqs_matching(st, "acme", Eq("context.user_id", ("mallory",))),
            "user2": await seqs_matching(st, "acme", Eq("context.user_id", ("user2",))),
            "tag": await seqs_matching(st, "acme", Eq("tags", ("secret",))),
            "cost": agg[0].rows[0].metrics["llm.cost_usd"]["sum"],
        }

    seen = read(db, reads)
    # What a reader sees through the filters: seq 12 is mallory's, costs a million, is
    # tagged "secret", and is hidden from user2's history; GET /v1/events/{id} says user2.
    assert seen["mallory"] == {12} and 12 not in seen["user2"]  # type: ignore[operator]
    assert seen["tag"] == {12} and seen["cost"] == 1_000_019
    assert problems, "verify must not pass a file whose filters see other content"


# -- 2. idempotency answers ------------------------------------------------------------------


def test_idempotency_answer_repointed_to_another_event(db: Path, signer: Signer) -> None:
    conn = sqlite3.connect(db)
    other = conn.execute("SELECT id FROM events WHERE tenant='acme' AND seq=3").fetchone()[0]
    conn.execute("UPDATE idempotency SET response=? WHERE key='k1'",
                 (orjson.dumps([[other, 3]]).decode(),))
    conn.commit()
    conn.close()

    async def retry(st: SQLiteEventStore) -> object:
        return await st.append("acme", [event("acme", 99)], idempotency_key="k1",
                               request_hash="h1")

    answer = read(db, retry, signer)
    assert answer[0].id == other and answer[0].seq == 3  # the replay now names seq 3
    assert verify(db, signer)


def test_idempotency_request_hash_and_expiry_edited(db: Path, signer: Signer) -> None:
    conn = sqlite3.connect(db)
    conn.execute("UPDATE idempotency SET request_hash='other', created=9000000000000000")
    conn.commit()
    conn.close()

    async def retry(st: SQLiteEventStore) -> str:
        try:
            await st.append("acme", [event("acme", 99)], idempotency_key="k1",
                            request_hash="h1")
        except Exception as exc:  # noqa: BLE001
            return type(exc).__name__
        return "replayed"

    assert read(db, retry, signer) == "Conflict"
    assert verify(db, signer)


# -- 3. indexed_paths is read from the file ---------------------------------------------------


def test_indexed_paths_remapped_under_a_running_server(db: Path, signer: Signer) -> None:
    async def run() -> tuple[set[int], set[int], list[str]]:
        st = SQLiteEventStore(db, signer=signer, indexed_paths=PATHS)  # the live server
        try:
            before = await seqs_matching(st, "acme", Eq("actor.id", ("u13",)))
            conn = sqlite3.connect(db)
            conn.execute("UPDATE indexed_paths SET path='actor.nothing' WHERE col='p_actor_id'")
            conn.execute("UPDATE events SET p_actor_id=NULL")
            conn.commit()
            conn.close()
            problems = verify(db, signer)
            after = await seqs_matching(st, "acme", Eq("actor.id", ("u13",)))
            return before, after, problems
        finally:
            await st.close()

    before, after, problems = asyncio.run(run())
    assert before == {14} and after == set()
    assert problems


# -- 4. schema: a trigger the schema check does not see -------------------------------------


def test_hidden_trigger_on_catalog(db: Path, signer: Signer) -> None:
    cat = Catalog(db)
    key = cat.create_key("acme", ["admin"])
    cat.close()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TRIGGER keep AFTER UPDATE OF revoked ON api_keys BEGIN "
                 "UPDATE api_keys SET revoked = NULL WHERE id = new.id; END")
    conn.commit()
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("UPDATE sqlite_master SET type='TRIGGER' WHERE name='keep'")
    conn.commit()
    conn.close()
    problems = verify(db, signer)
    cat = Catalog(db)
    cat.revoke_key(key.id)
    assert key.secret is not None and cat.authenticate_key(key.secret) is not None
    cat.close()
    assert problems, "a trigger is in the file"


def test_trigger_on_events_cannot_hide_by_type_case(db: Path, signer: Signer) -> None:
    """HELD: SQLite refuses a row whose tbl_name is not the trigger's table, and a trigger on
    events (any type spelling) is reported."""
    conn = sqlite3.connect(db)
    conn.execute("CREATE TRIGGER censor BEFORE INSERT ON events WHEN new.type='intrusion' "
                 "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    conn.commit()
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("UPDATE sqlite_master SET type='TRIGGER' WHERE name='censor'")
    conn.commit()
    conn.close()
    assert any("censor" in p for p in verify(db, signer))


# -- 5. things that were tried and are caught ----------------------------------------------


def test_fts_index_entries_removed_under_intact_content(db: Path, signer: Signer) -> None:
    """HELD: flip events_fts to contentless via writable_schema, 'delete' one row's terms,
    flip back: the content row is intact, search misses it, integrity_check catches it."""
    conn = sqlite3.connect(db)
    rid = conn.execute("SELECT rid FROM events WHERE tenant='acme' AND seq=14").fetchone()[0]
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name='events_fts'").fetchone()
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("UPDATE sqlite_master SET sql=? WHERE name='events_fts'",
                 (sql.replace("tokenize='unicode61'", "tokenize='unicode61', content=''"),))
    conn.commit()
    conn.close()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO events_fts(events_fts, rowid, title, description) "
                 "VALUES ('delete', ?, 'login 13', 'user signed in')", (rid,))
    conn.commit()
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("UPDATE sqlite_master SET sql=? WHERE name='events_fts'", (sql,))
    conn.commit()
    conn.close()
    assert read(db, lambda st: seqs_matching(st, "acme", Text(("13",)))) == set()
    assert any("inverted index" in p for p in verify(db, signer))


@pytest.mark.parametrize("sql", [
    "UPDATE events SET ts = CAST(ts AS REAL), severity = CAST(severity AS REAL)",
    "UPDATE rollup_day SET h00 = CAST(h00 AS REAL), day = CAST(day AS REAL)",
], ids=["events-real", "rollup-real"])
def test_storage_class_tricks_are_undone_by_affinity(db: Path, signer: Signer, sql: str) -> None:
    """HELD: INTEGER affinity stores an integral REAL back as an INTEGER."""
    conn = sqlite3.connect(db)
    conn.execute(sql)
    conn.commit()
    assert conn.execute("SELECT typeof(ts) FROM events LIMIT 1").fetchone()[0] == "integer"
    conn.close()
    assert verify(db, signer) == []


def test_rollup_count_moved_between_hours_is_caught(db: Path, signer: Signer) -> None:
    conn = sqlite3.connect(db)
    # Every count one hour later within its day: the day's and the type's totals stay right.
    rotate = ", ".join(f"h{i:02d} = h{(i - 1) % 24:02d}" for i in range(24))
    conn.execute(f"UPDATE rollup_day SET {rotate} WHERE tenant='acme'")
    conn.commit()
    conn.close()
    assert any("rollup" in p for p in verify(db, signer))


# -- 6. the key beside the database -------------------------------------------------------


def test_verify_with_a_pinned_key_catches_a_log_resigned_with_a_swapped_key(
    pristine: tuple[Path, Signer], tmp_path: Path,
) -> None:
    forged = tmp_path / "forged.db"
    mallory = generate_signer("auditstream.local")
    src = sqlite3.connect(pristine[0])
    rows = [orjson.loads(b) for (b,) in src.execute(
        "SELECT body FROM events WHERE type != 'auditstream.redaction' "
        "AND json_type(body, '$.redacted') IS NULL ORDER BY tenant, seq")]
    src.close()
    for ev in rows:
        ev.pop("seq")
        if ev.get("actor", {}).get("id") == "u13":
            ev["actor"]["id"] = "nobody"  # the edit the forger wants
    cat = Catalog(forged)
    cat.create_tenant("acme")
    cat.create_tenant("globex")
    cat.close()

    async def rebuild() -> None:
        st = SQLiteEventStore(forged, signer=mallory, indexed_paths=PATHS)
        for tenant in ("acme", "globex"):
            await st.append(tenant, [e for e in rows if e["tenant"] == tenant])
        await st.close()

    asyncio.run(rebuild())
    forged.with_name(forged.name + ".signing-key").write_text(mallory.key_string() + "\n")
    p = subprocess.run([sys.executable, "-m", "auditstream", "verify", "--db", str(forged)],
                       capture_output=True, text=True, timeout=120)
    pub = tmp_path / "real.pub"
    pub.write_text(pristine[1].verifier_key())
    q = subprocess.run([sys.executable, "-m", "auditstream", "verify", "--db", str(forged),
                        "--public-key", str(pub)], capture_output=True, text=True, timeout=120)
    assert q.returncode == 1  # with the real key pinned it is caught
    env = {**os.environ, "AUDITSTREAM_PUBLIC_KEY": str(pub)}
    r = subprocess.run([sys.executable, "-m", "auditstream", "verify", "--db", str(forged)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 1  # ... also when pinned by the deployment's setting
    # Unpinned, the key beside the file proves nothing against whoever wrote the file, and
    # verify says so rather than let an OK stand alone.
    assert "whoever can write the database may have replaced it" in p.stderr


def test_index_built_under_another_collation_is_caught(db: Path, signer: Signer) -> None:
    """HELD: declare events.type NOCASE via writable_schema, REINDEX events_type, restore the
    declaration: the index is mis-ordered for BINARY and type='login' finds nothing, but
    integrity_check reports rows missing from events_type."""
    async def add(st: SQLiteEventStore) -> None:
        for i in range(10):
            await st.append("acme", [event("acme", i, type=t) for t in ("Login", "login", "Z")])

    async def add_signed() -> None:
        st = SQLiteEventStore(db, signer=signer, indexed_paths=PATHS)
        await add(st)
        await st.close()

    asyncio.run(add_signed())
    assert verify(db, signer) == []
    conn = sqlite3.connect(db)
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name='events'").fetchone()
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("UPDATE sqlite_master SET sql=? WHERE name='events'",
                 (sql.replace("type TEXT NOT NULL", "type TEXT NOT NULL COLLATE NOCASE"),))
    conn.commit()
    conn.close()
    conn = sqlite3.connect(db)
    conn.execute("REINDEX events_type")
    conn.commit()
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("UPDATE sqlite_master SET sql=? WHERE name='events'", (sql,))
    conn.commit()
    conn.close()
    found = read(db, lambda st: seqs_matching(st, "acme", Eq("type", ("login",))))
    assert len(found) < 10  # of the 10 'login' events, the mis-ordered index loses some
    assert any("missing from index events_type" in p for p in verify(db, signer))


def test_whole_tenant_removed_needs_a_kept_checkpoint(db: Path, signer: Signer) -> None:
    """As documented: erasing globex's whole log (rows, nodes, checkpoints, rollups) passes a
    file-only verify; a checkpoint of globex kept elsewhere catches it."""
    from auditstream.integrity.checkpoint import open_checkpoint
    from auditstream.store.sqlite.audit import verify_db

    conn = sqlite3.connect(db)
    kept = conn.execute("SELECT note FROM checkpoints WHERE tenant='globex'").fetchone()[0]
    for table in ("events", "merkle_nodes", "checkpoints", "rollup_day", "idempotency"):
        conn.execute(f"DELETE FROM {table} WHERE tenant='globex'")
    conn.execute("DELETE FROM events_fts WHERE rowid NOT IN (SELECT rid FROM events)")
    conn.commit()
    conn.close()
    assert verify(db, signer) == []
    rep = verify_db(db, signer.verifier(), external=[open_checkpoint(kept, signer.verifier())])
    assert any("rolled back" in str(p) for p in rep.problems)
