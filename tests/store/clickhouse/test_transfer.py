"""The log → index transfer of the ClickHouse backend: a process killed between the log
commit and the index (or between the index insert and the watermark) loses nothing and
shows no duplicate once reopened; the index is proven against the log by ``verify``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from auditstream.integrity.checkpoint import Signer
from auditstream.query.filter import All, Eq
from auditstream.store.base import AggregateSpec, EventQuery
from auditstream.store.clickhouse import ClickHouseEventStore
from auditstream.store.clickhouse.audit import verify_index
from auditstream.store.clickhouse.engine import Engine, path_column, path_expr

from ..backends import (
    BACKENDS,
    DEPLOYMENT,
    HOUR,
    ROLLUP_BLOCK,
    T0,
    assert_verified,
    chdb_url,
    clickhouse_verify_command,
    ev,
    everything,
    put,
)

TESTS = Path(__file__).resolve().parents[2]
BACKEND = BACKENDS["clickhouse"]


def _open(directory: Path, signer: Signer) -> ClickHouseEventStore:
    return ClickHouseEventStore(directory / "store.db", clickhouse_url=chdb_url(directory),
                                signer=signer, deployment=DEPLOYMENT, rollup_block=ROLLUP_BLOCK,
                                indexed_paths=["actor.id"])


def _run_until_killed(directory: Path, signer: Signer, step: str, n: int) -> list[list]:
    proc = subprocess.run(
        [sys.executable, "-m", "store.clickhouse.kill_child", str(directory),
         signer.key_string(), step, str(n)],
        cwd=TESTS, env=dict(os.environ, PYTHONPATH=str(TESTS)), capture_output=True,
        timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    return [pair for line in proc.stdout.splitlines() for pair in orjson.loads(line)]


def _log_tail(directory: Path) -> int:
    from auditstream.dbapi import sqlite3

    conn = sqlite3.connect(directory / "store.db")
    try:
        return int(conn.execute("SELECT MAX(seq) FROM events WHERE tenant = 'a'").fetchone()[0])
    finally:
        conn.close()


def _rows(directory: Path) -> tuple[int, int]:
    """(rows stored, rows FINAL serves) of tenant a: what was sent, what readers see."""
    engine = Engine(chdb_url(directory), clients=1)
    try:
        with engine.client() as c:
            stored = c.query("SELECT count() FROM auditstream.events WHERE tenant = 'a'")
            served = c.query("SELECT count() FROM auditstream.events FINAL WHERE tenant = 'a'")
            return int(stored.result_rows[0][0]), int(served.result_rows[0][0])
    finally:
        engine.close()


@pytest.mark.anyio
@pytest.mark.parametrize("step", ["insert", "watermark"])
async def test_a_kill_inside_the_transfer_loses_nothing_and_shows_no_duplicate(
    tmp_path: Path, signer: Signer, step: str,
) -> None:
    acked = _run_until_killed(tmp_path, signer, step, n=4)
    assert len(acked) == 30  # three batches acknowledged, the fourth committed to the log
    tail = _log_tail(tmp_path)
    assert tail == 40  # ... but killed before its index insert or its watermark
    if step == "watermark":
        # The fourth batch reached the index but not the watermark: readers did not see
        # it, and the reopened store sends it again.
        assert _rows(tmp_path) == (40, 40)

    store = _open(tmp_path, signer)
    try:
        events = await everything(store, "a")
        assert [e["seq"] for e in events] == list(range(1, 41))  # caught up, once each
        stored = {e["id"]: e["seq"] for e in events}
        assert all(stored.get(eid) == seq for eid, seq in acked)
        assert await store.count("a", All()) == 40
        page = await store.query("a", EventQuery(All(), limit=100, include_total=True))
        assert [e["seq"] for e in page.events] == list(range(40, 0, -1)) and page.total == 40
        [bucket] = await store.aggregate("a", All(), AggregateSpec(group_by="type"))
        assert [(r.key, r.count) for r in bucket.rows] == [("install", 40)]
        assert await store.last_seq("a") == 40
        await assert_verified(store, "a", signer)
        assert await put(store, "a", ev()) == [41]
    finally:
        await store.close()
    stored_rows, served = _rows(tmp_path)
    assert served == 41
    if step == "watermark":
        assert stored_rows >= 41  # sent twice (until a merge), seen once
    assert BACKEND.audit is not None and BACKEND.audit(tmp_path, signer.verifier()) == []


async def _loaded(directory: Path, signer: Signer) -> list[int]:
    store = _open(directory, signer)
    try:
        seqs = await put(store, "a", *[ev(title=f"event {i}", actor={"id": f"u{i}"})
                                       for i in range(8)])
        await store.redact("a", (await everything(store, "a"))[1]["id"], "test")
        return seqs
    finally:
        await store.close()


def _problems(directory: Path) -> list[str]:
    engine = Engine(chdb_url(directory), clients=1)
    try:
        return [str(p) for p in verify_index(engine, str(directory / "store.db"))]
    finally:
        engine.close()


def _edit(directory: Path, sql: str) -> None:
    engine = Engine(chdb_url(directory), clients=1)
    try:
        with engine.client() as c:
            for statement in sql.split(";"):
                c.command(statement, settings={"mutations_sync": 2})
    finally:
        engine.close()


ACTOR = path_column("actor.id")
EDITS = {
    # Behind auditstream's back: each is what someone with the ClickHouse credentials can do.
    "body": ("ALTER TABLE auditstream.events UPDATE body = replaceOne(body, 'event 3', "
             "'event 9') WHERE seq = 4", "seq 4"),
    "column": ("ALTER TABLE auditstream.events UPDATE type = 'login' WHERE seq = 5", "seq 5"),
    "words": ("ALTER TABLE auditstream.events UPDATE words = '' WHERE seq = 6", "seq 6"),
    "deleted": ("ALTER TABLE auditstream.events DELETE WHERE seq = 3", "seq 3"),
    "forged stub": (
        "INSERT INTO auditstream.events (tenant, seq, ts, received, ver, id, type, category, "
        "sev, outcome, body, words) SELECT tenant, seq, ts, received, 99, id, type, "
        "category, sev, outcome, replaceOne(body, 'event 6', 'event 0'), words "
        "FROM auditstream.events WHERE seq = 7", "seq 7"),
    "watermark": ("INSERT INTO auditstream.watermarks VALUES ('a', 12)", "watermark 12"),
    # The expression alone: the rows inserted without the value (another node's) would
    # get other values.
    "path column expression": (
        f"ALTER TABLE auditstream.events MODIFY COLUMN {ACTOR} Nullable(String) DEFAULT "
        "'forged'", "actor.id"),
    # A value no body has: filters on actor.id would find seq 1 by it.
    "path column": (f"ALTER TABLE auditstream.events UPDATE {ACTOR} = 'forged' WHERE seq = 1",
                    "seq 1"),
    # Values written under another expression, and the expression put back.
    "path column rematerialized": (
        f"ALTER TABLE auditstream.events MODIFY COLUMN {ACTOR} Nullable(String) MATERIALIZED "
        f"if(seq = 2, 'forged', {path_expr('actor.id')});"
        f"ALTER TABLE auditstream.events MATERIALIZE COLUMN {ACTOR};"
        f"ALTER TABLE auditstream.events MODIFY COLUMN {ACTOR} Nullable(String) DEFAULT "
        f"{path_expr('actor.id')}", "seq 2"),
    # A count raised in a later version of its row: what FINAL (and the aggregate) reads.
    "hourly count": (
        f"INSERT INTO auditstream.hourly_{ROLLUP_BLOCK} SELECT tenant, hour, block, type, "
        f"category, sev, outcome, n + 1, ver + 100 FROM auditstream.hourly_{ROLLUP_BLOCK} FINAL "
        "WHERE block = 0 LIMIT 1", "hourly counts of block 0"),
}


@pytest.mark.anyio
@pytest.mark.parametrize("edit", sorted(EDITS))
async def test_an_index_row_edited_behind_auditstreams_back_is_found(
    tmp_path: Path, signer: Signer, edit: str,
) -> None:
    await _loaded(tmp_path, signer)
    assert _problems(tmp_path) == []
    sql, where = EDITS[edit]
    _edit(tmp_path, sql)
    problems = _problems(tmp_path)
    assert problems and where in problems[0], problems


def test_verify_of_the_cli_checks_the_index(tmp_path: Path, signer: Signer) -> None:
    import anyio

    anyio.run(_loaded, tmp_path, signer)
    cmd, env = clickhouse_verify_command(tmp_path, signer)
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    _edit(tmp_path, EDITS["column"][0])
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "seq 5" in bad.stderr, bad.stderr


@pytest.mark.anyio
async def test_redactions_reach_the_index_with_their_record(tmp_path: Path,
                                                            signer: Signer) -> None:
    await _loaded(tmp_path, signer)
    store = _open(tmp_path, signer)
    try:
        events = await everything(store, "a")
        assert "redacted" in events[1] and "title" not in events[1]
        # No filter finds the content a stub replaced, whatever ClickHouse still stores.
        assert await store.count("a", Eq("actor.id", ("u1",))) == 0
        assert await store.count("a", Eq("actor.id", ("u2",))) == 1
    finally:
        await store.close()


def test_a_clickhouse_that_cannot_be_reached_is_unavailable_not_a_crash(
        tmp_path: Path) -> None:
    import socket

    from auditstream.errors import StoreUnavailable

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        ClickHouseEventStore(tmp_path / "store.db",
                             clickhouse_url=f"http://u:p@127.0.0.1:{port}/audit")


@pytest.mark.anyio
async def test_a_failed_transfer_is_retried_before_the_append_is_answered(
        tmp_path: Path, signer: Signer) -> None:
    failures = {"insert": 2, "watermark": 1}  # ClickHouse down for a moment, twice

    def hook(step: str) -> None:
        if failures[step]:
            failures[step] -= 1
            raise ConnectionError(f"ClickHouse unreachable at {step}")

    store = ClickHouseEventStore(tmp_path / "store.db", clickhouse_url=chdb_url(tmp_path),
                                 signer=signer, deployment=DEPLOYMENT, hook=hook)
    try:
        assert await put(store, "a", ev(), ev()) == [1, 2]
        assert failures == {"insert": 0, "watermark": 0}
        # Answered only once readers can see it, each event once.
        assert [e["seq"] for e in await everything(store, "a")] == [1, 2]
        assert store.feed.watermark("a") == 2
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_commit_goes_to_the_index_as_the_writer_prepared_it(
        tmp_path: Path, signer: Signer) -> None:
    """The transfer of a commit sends the entries the log's writer handed over
    (``Indexer.committed``), not the log's copy parsed again; ``verify`` proves every row
    equal to the one made from the stored body (``transfer.index_row``)."""
    store = _open(tmp_path, signer)
    read_back: list[tuple[int, int]] = []
    log_rows = store.indexer._log_rows

    def counted(conn, tenant, lo, hi):  # type: ignore[no-untyped-def]
        read_back.append((lo, hi))
        return log_rows(conn, tenant, lo, hi)

    store.indexer._log_rows = counted  # type: ignore[method-assign]
    try:
        await put(store, "a", ev(title="Ünïcode ﬁ title", description="x\u2028y",
                                 category="auth", outcome="failure", severity="critical",
                                 actor={"id": "u1"}),
                  ev(actor={"id": 7}), ev(title="", actor=["not", "an", "object"]))
        await put(store, "b", ev(ts=T0 + 3 * HOUR, actor={"id": "b1"}))
        await store.redact("a", (await everything(store, "a"))[0]["id"], "test")
        assert await store.count("a", Eq("actor.id", ("u1",))) == 0
        assert await store.count("b", Eq("actor.id", ("b1",))) == 1
    finally:
        await store.close()
    assert read_back == []
    assert _problems(tmp_path) == []


@pytest.mark.anyio
async def test_a_path_column_only_another_node_declared_is_filled_from_the_body(
        tmp_path: Path, signer: Signer) -> None:
    """The index has a column for a path this node's log does not declare (another node
    added it): the writer's entries lack its value, so the transfer parses the log's
    copy instead, and the column holds what the body says."""
    other = Engine(chdb_url(tmp_path), clients=1)
    try:
        other.migrate(ROLLUP_BLOCK, ["subject.name"])
    finally:
        other.close()
    store = _open(tmp_path, signer)
    try:
        assert store.indexer._entry_paths is None
        await put(store, "a", ev(subject={"name": "left-pad"}), ev(subject={"name": 3}))
        assert await store.count("a", Eq("subject.name", ("left-pad",))) == 1
        assert await store.count("a", Eq("subject.name", (3,))) == 1
    finally:
        await store.close()
    assert _problems(tmp_path) == []


@pytest.mark.anyio
async def test_a_failed_hand_over_neither_repeats_the_commit_nor_loses_it(
        tmp_path: Path, signer: Signer) -> None:
    """The hand-over runs after the log's commit: a raise there must not make the writer
    take the group as unwritten (it would append it again); the transfer reads the
    entries back from the log instead."""
    store = _open(tmp_path, signer)

    def broken(appended: object) -> None:
        raise MemoryError("no room for the hand-over")

    assert store.log_storage is not None
    store.log_storage.on_committed = broken
    try:
        assert await put(store, "a", ev(actor={"id": "u1"}), ev()) == [1, 2]
        assert [e["seq"] for e in await everything(store, "a")] == [1, 2]
        assert await store.count("a", Eq("actor.id", ("u1",))) == 1
    finally:
        await store.close()
    assert _problems(tmp_path) == []
