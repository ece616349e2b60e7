"""Bodies the log drops once the index holds them (``drop_bodies``): readers, re-sent ids,
redactions and purges still get the whole event; ``verify`` proves the index's copy
against the log's leaf, and finds it edited; without the index it says what it lacks."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest

from auditstream.dbapi import sqlite3
from auditstream.errors import Conflict, StoreError
from auditstream.integrity.checkpoint import Signer
from auditstream.query.filter import Text
from auditstream.store.base import EventQuery
from auditstream.store.clickhouse import ClickHouseEventStore
from auditstream.store.clickhouse.engine import Engine
from auditstream.store.sqlite.audit import verify_db

from ..backends import (
    DEPLOYMENT,
    HOUR,
    T0,
    audit_clickhouse,
    chdb_url,
    clickhouse_verify_command,
    ev,
    everything,
    put,
)

pytestmark = pytest.mark.anyio
EVERY = 4


def _open(directory: Path, signer: Signer, *, drop: bool = True) -> ClickHouseEventStore:
    return ClickHouseEventStore(directory / "store.db", clickhouse_url=chdb_url(directory),
                                signer=signer, deployment=DEPLOYMENT, drop_bodies=drop,
                                drop_every=EVERY, indexed_paths=["actor.id"])


def _events(n: int) -> list[dict[str, Any]]:
    return [ev("login", ts=T0 + i * HOUR, id=f"evt_{i:04d}", title=f"sign-in number{i}",
               actor={"id": f"user{i}"}) for i in range(n)]


async def _put(store: ClickHouseEventStore, events: list[dict[str, Any]]) -> None:
    """One commit per event: the watermark passes ``EVERY`` at commits of its own."""
    for e in copy.deepcopy(events):
        await put(store, "a", e)


async def _stored(directory: Path, signer: Signer, events: list[dict[str, Any]], *,
                  drop: bool = True) -> None:
    """``events`` put by a store opened, then closed, over ``directory``."""
    store = _open(directory, signer, drop=drop)
    try:
        await _put(store, events)
    finally:
        await store.close()


def _log(directory: Path) -> list[tuple[int, str, str | None]]:
    conn = sqlite3.connect(directory / "store.db")
    try:
        return conn.execute("SELECT seq, body, p_actor_id FROM events WHERE tenant = 'a' "
                            "ORDER BY seq").fetchall()
    finally:
        conn.close()


def _sql(directory: Path, *statements: str) -> None:
    conn = sqlite3.connect(directory / "store.db")
    try:
        for s in statements:
            conn.execute(s)
        conn.commit()
    finally:
        conn.close()


def _verify(directory: Path, signer: Signer, *, index: bool = True) -> list[str]:
    """``verify`` of the log and the index; without ``index``, of the log alone."""
    if index:
        return audit_clickhouse(directory, signer.verifier())
    report = verify_db(directory / "store.db", signer.verifier(), DEPLOYMENT)
    return [str(p) for p in report.problems]


def _strip(e: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in e.items() if k not in ("seq", "received_at", "tenant")}


async def test_the_log_drops_what_the_index_holds_and_readers_see_no_difference(
        tmp_path: Path, signer: Signer) -> None:
    events = _events(10)
    store = _open(tmp_path, signer)
    try:
        await _put(store, events[:3])
        assert all(body for _, body, _ in _log(tmp_path)), "dropped before EVERY seqs"
        await _put(store, events[3:])
        got = await everything(store, "a")
        assert [_strip(e) for e in got] == [_strip(e) for e in events]
        found = await store.query("a", EventQuery(filter=Text(("number7",)), limit=5))
        assert [e["id"] for e in found.events] == ["evt_0007"]
        assert (await store.get("a", "evt_0002"))["actor"] == {"id": "user2"}  # type: ignore[index]
    finally:
        await store.close()
    rows = _log(tmp_path)
    # Dropped at the commits that took the watermark EVERY past the last drop: 4 and 8.
    assert [seq for seq, body, _ in rows if body == ""] == list(range(1, 9))
    assert all(path is None for seq, _, path in rows if seq <= 8)
    assert rows[9] == (10, rows[9][1], "user9") and rows[9][1].startswith("{")
    conn = sqlite3.connect(tmp_path / "store.db")
    try:
        assert conn.execute("SELECT count(*) FROM events_fts").fetchone()[0] == 2
        assert conn.execute("SELECT upto FROM dropped_bodies").fetchall() == [(8,)]
    finally:
        conn.close()
    assert _verify(tmp_path, signer) == []
    alone = _verify(tmp_path, signer, index=False)
    assert alone and "seq 1: its body was dropped from the log: verify with the clickhouse" \
        in alone[0], alone


async def test_a_resent_id_redaction_and_purge_read_dropped_bodies_back(
        tmp_path: Path, signer: Signer) -> None:
    events = _events(9)
    store = _open(tmp_path, signer)
    try:
        await _put(store, events)
        same = [dict(copy.deepcopy(events[2]), tenant="a")]
        (again,) = await store.append("a", same, client_ids=frozenset({0}))
        assert (again.seq, again.created) == (3, False)
        other = [dict(copy.deepcopy(events[2]), tenant="a", title="another")]
        with pytest.raises(Conflict):
            await store.append("a", other, client_ids=frozenset({0}))
        stub = await store.redact("a", "evt_0001", "erasure request")
        assert stub is not None and stub["redacted"]["reason"] == "erasure request"
        # Seqs 1..4 are before T0 + 4h; seq 2 is redacted already.
        assert await store.purge("a", T0 + 4 * HOUR, "retention") == 3
        served = {e["id"]: e for e in await everything(store, "a")}
        assert {i for i, e in served.items() if "redacted" in e} == {
            "evt_0000", "evt_0001", "evt_0002", "evt_0003"}
        assert served["evt_0005"]["title"] == "sign-in number5"
    finally:
        await store.close()
    assert _verify(tmp_path, signer) == []


async def test_reopened_the_store_drops_from_where_it_stopped(tmp_path: Path,
                                                               signer: Signer) -> None:
    events = _events(12)
    await _stored(tmp_path, signer, events[:6])
    store = _open(tmp_path, signer)
    try:
        await _put(store, events[6:])
        assert len(await everything(store, "a")) == 12
    finally:
        await store.close()
    assert [seq for seq, body, _ in _log(tmp_path) if body == ""] == list(range(1, 13))
    assert _verify(tmp_path, signer) == []


async def test_without_the_setting_nothing_is_dropped(tmp_path: Path, signer: Signer) -> None:
    await _stored(tmp_path, signer, _events(9), drop=False)
    assert all(body for _, body, _ in _log(tmp_path))


def _edit_index(directory: Path, sql: str) -> None:
    engine = Engine(chdb_url(directory), clients=1)
    try:
        with engine.client() as c:
            c.command(sql, settings={"mutations_sync": 2})
    finally:
        engine.close()


async def test_the_index_copy_of_a_dropped_body_edited_is_found_and_never_used(
        tmp_path: Path, signer: Signer) -> None:
    events = _events(8)
    await _stored(tmp_path, signer, events)
    _edit_index(tmp_path, "ALTER TABLE auditstream.events UPDATE body = replaceOne(body, "
                "'number3', 'number0') WHERE seq = 4")
    problems = _verify(tmp_path, signer)
    assert problems and "seq 4" in problems[0], problems
    assert any("does not match its leaf" in p for p in problems), problems
    store = _open(tmp_path, signer)
    try:
        # A re-sent id is compared with the log's content, never with an edited copy.
        with pytest.raises(StoreError, match="does not match its leaf"):
            await store.append("a", [dict(copy.deepcopy(events[3]), tenant="a")],
                               client_ids=frozenset({0}))
    finally:
        await store.close()


async def test_a_body_blanked_in_the_log_beyond_the_dropped_range_is_found(
        tmp_path: Path, signer: Signer) -> None:
    await _stored(tmp_path, signer, _events(6))
    _sql(tmp_path, "UPDATE events SET body = '' WHERE seq = 6")
    problems = _verify(tmp_path, signer)
    assert problems and "seq 6" in problems[0], problems
    # Widening the recorded range over it only moves the question to the index's copy,
    # which is the event: nothing is lost or changed, and verify says so.
    _sql(tmp_path, "UPDATE dropped_bodies SET upto = 6", "UPDATE events SET p_actor_id = NULL "
         "WHERE seq = 6", "DELETE FROM events_fts WHERE rowid = (SELECT rid FROM events "
         "WHERE seq = 6)")
    assert _verify(tmp_path, signer) == []


async def test_a_dropped_row_that_kept_its_full_text_row_is_found(tmp_path: Path,
                                                                   signer: Signer) -> None:
    await _stored(tmp_path, signer, _events(4))
    # Search words that no body has any more: a search would find the event by them.
    _sql(tmp_path, "INSERT INTO events_fts(rowid, title, description) SELECT rid, "
         "'forged words', NULL FROM events WHERE seq = 2")
    problems = _verify(tmp_path, signer)
    assert problems and "seq 2" in problems[0] and "full-text" in problems[0], problems


def test_verify_of_the_cli_reads_dropped_bodies_from_the_index(tmp_path: Path,
                                                                signer: Signer) -> None:
    import anyio

    anyio.run(_stored, tmp_path, signer, _events(5))
    cmd, env = clickhouse_verify_command(tmp_path, signer)
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "OK: 5 events" in ok.stdout, ok.stderr
    alone = subprocess.run(cmd, env=dict(env, AUDITSTREAM_BACKEND="sqlite"),
                           capture_output=True, text=True, timeout=120)
    assert alone.returncode == 1 and "verify with the clickhouse" in alone.stderr, alone.stderr


async def test_the_setting_drops_every_4096_seqs(tmp_path: Path) -> None:
    from auditstream.app import build_store
    from auditstream.settings import Settings

    settings = Settings.from_env({
        "AUDITSTREAM_DB": str(tmp_path / "store.db"), "AUDITSTREAM_BACKEND": "clickhouse",
        "AUDITSTREAM_CLICKHOUSE_URL": chdb_url(tmp_path),
        "AUDITSTREAM_DROP_INDEXED_BODIES": "true"})
    store = build_store(settings)
    try:
        await put(store, "a", *[ev("login", title=f"n{i}") for i in range(4095)])
        assert all(body for _, body, _ in _log(tmp_path))
        await put(store, "a", ev("login"), ev("login"))
        assert len(await everything(store, "a")) == 4097
    finally:
        await store.close()
    assert [seq for seq, body, _ in _log(tmp_path) if body == ""] == list(range(1, 4098))


async def test_a_watermark_behind_the_dropped_range_moves_on_from_it(
        tmp_path: Path, signer: Signer) -> None:
    """A restored index (or another writer of the log) leaves the watermark behind what
    the log dropped: the store opens, sends on from the drop, and readers see it all."""
    await _stored(tmp_path, signer, _events(9))
    _edit_index(tmp_path, "TRUNCATE TABLE auditstream.watermarks")
    store = _open(tmp_path, signer)
    try:
        assert [e["seq"] for e in await everything(store, "a")] == list(range(1, 10))
        await put(store, "a", ev("login"))
        assert len(await everything(store, "a")) == 10
    finally:
        await store.close()
    assert _verify(tmp_path, signer) == []


async def test_the_sqlite_backend_refuses_a_log_that_dropped_bodies(
        tmp_path: Path, signer: Signer) -> None:
    from auditstream.store.sqlite import SQLiteEventStore

    await _stored(tmp_path, signer, _events(4))
    with pytest.raises(StoreError, match="AUDITSTREAM_BACKEND=clickhouse"):
        SQLiteEventStore(tmp_path / "store.db", signer=signer, deployment=DEPLOYMENT)


async def test_the_first_drop_over_a_long_log_is_spread_over_transfers(
        tmp_path: Path, signer: Signer) -> None:
    store = _open(tmp_path, signer, drop=False)
    try:
        await put(store, "a", *_events(40))
    finally:
        await store.close()
    store = _open(tmp_path, signer)
    uptos = []
    try:
        for _ in range(3):
            await put(store, "a", ev("login"))
            conn = sqlite3.connect(tmp_path / "store.db")
            uptos.append(conn.execute("SELECT upto FROM dropped_bodies").fetchone()[0])
            conn.close()
        with store.engine.client() as c:
            settings = c.query("SELECT create_table_query FROM system.tables WHERE "
                               "name = 'events'").result_rows[0][0]
    finally:
        await store.close()
    # DROP_MOST_BLOCKS blocks of EVERY seqs per drop.
    assert uptos == [16, 32, 43]
    # The index's copy is the only one now: its inserts are fsync'd.
    assert "fsync_after_insert = 1" in settings
    assert _verify(tmp_path, signer) == []


async def test_a_redaction_record_dropped_from_the_log_is_found(tmp_path: Path,
                                                                signer: Signer) -> None:
    store = _open(tmp_path, signer)
    try:
        await _put(store, _events(3))
        await store.redact("a", "evt_0001", "erasure")  # its record is seq 4
        await _put(store, _events(5)[3:])
    finally:
        await store.close()
    _sql(tmp_path, "UPDATE events SET body = '' WHERE seq = 4",
         "DELETE FROM events_fts WHERE rowid = (SELECT rid FROM events WHERE seq = 4)")
    problems = _verify(tmp_path, signer)
    assert problems and "seq 4" in problems[0] and "record" in problems[0], problems


async def test_index_inserts_made_undurable_are_found(tmp_path: Path, signer: Signer) -> None:
    """With bodies dropped, the index's copy is the only one: someone with the ClickHouse
    credentials turning its fsync off changes no byte, and ``verify`` still names it."""
    await _stored(tmp_path, signer, _events(9))
    assert _verify(tmp_path, signer) == []
    engine = Engine(chdb_url(tmp_path), clients=1)
    try:
        with engine.client() as c:
            c.command("ALTER TABLE auditstream.events MODIFY SETTING fsync_after_insert = 0")
    finally:
        engine.close()
    problems = _verify(tmp_path, signer)
    assert problems and "fsync_after_insert = 1" in problems[0], problems
