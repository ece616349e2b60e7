"""Path columns (``engine.PATH_COLUMN``): a declared path's string value, computed by
ClickHouse from the body, that equality filters read instead of parsing bodies. The
property test in ``tests/store/test_filters.py`` proves the filters through them against
the predicate (its stores declare ``INDEXED``); tampering is in test_transfer.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditstream.integrity.checkpoint import Signer
from auditstream.query.filter import Eq
from auditstream.store.base import EventQuery
from auditstream.store.clickhouse import ClickHouseEventStore
from auditstream.store.clickhouse.compile import Compiler
from auditstream.store.clickhouse.engine import path_column, path_expr

from ..backends import DEPLOYMENT, audit_clickhouse, chdb_url, ev, put


def _open(directory: Path, signer: Signer, paths: list[str]) -> ClickHouseEventStore:
    return ClickHouseEventStore(directory / "store.db", clickhouse_url=chdb_url(directory),
                                signer=signer, deployment=DEPLOYMENT, indexed_paths=paths)


def test_an_equality_on_a_path_with_a_column_reads_the_column() -> None:
    col = path_column("actor.id")
    sql, exact = Compiler(columns={"actor.id": col}).where(Eq("actor.id", ("u1", "u2")))
    assert col in sql and "JSONExtract" not in sql and exact
    # Other value types still read the body: the column holds strings only.
    sql, _ = Compiler(columns={"actor.id": col}).where(Eq("actor.id", (7,)))
    assert col not in sql and "JSONExtractFloat" in sql


def test_path_columns_are_unique_per_path() -> None:
    assert path_column("context.a_b.c") != path_column("context.a.b_c")


@pytest.mark.anyio
async def test_a_path_declared_later_gets_its_column_over_the_events_already_indexed(
        tmp_path: Path, signer: Signer) -> None:
    store = _open(tmp_path, signer, [])
    try:
        await put(store, "a", *[ev(actor={"id": f"u{i % 3}"}) for i in range(9)],
                  ev(actor={"id": 5}), ev(title="no actor"))
        assert store.index_path_columns == {}
    finally:
        await store.close()
    store = _open(tmp_path, signer, ["actor.id"])
    try:
        assert store.index_path_columns == {"actor.id": path_column("actor.id")}
        page = await store.query("a", EventQuery(Eq("actor.id", ("u1",)), limit=50))
        assert sorted(e["seq"] for e in page.events) == [2, 5, 8]
        page = await store.query("a", EventQuery(Eq("actor.id", (5,)), limit=50))
        assert [e["seq"] for e in page.events] == [10]
        await put(store, "a", ev(actor={"id": "u1"}))
        assert await store.count("a", Eq("actor.id", ("u1",))) == 4
    finally:
        await store.close()
    assert audit_clickhouse(tmp_path, signer.verifier()) == []


ODD = ["", "5", "1e400", "ü\u0301", "\u2028\u2029", "\x00nul", "😀" * 40, '"quoted"\\', "x" * 5000]


@pytest.mark.anyio
async def test_the_values_the_transfer_sends_are_the_columns_expression(
        tmp_path: Path, signer: Signer) -> None:
    """The transfer sends each path's value (``transfer.index_row``) instead of ClickHouse
    computing it: for odd strings and non-strings alike, ``verify`` finds each row's value
    equal to the column's expression over the body, and filters find them by it."""
    store = _open(tmp_path, signer, ["actor.id", "subject.name"])
    try:
        await put(store, "a", *[ev(actor={"id": v}, subject={"name": v}) for v in ODD],
                  ev(actor={"id": 7}), ev(actor={"id": None}), ev(actor={"id": ["x"]}),
                  ev(actor="flat"), ev(subject={"name": {"id": "nested"}}))
        for i, value in enumerate(ODD):
            page = await store.query("a", EventQuery(Eq("actor.id", (value,)), limit=50))
            assert [e["seq"] for e in page.events] == [i + 1], value
    finally:
        await store.close()
    assert audit_clickhouse(tmp_path, signer.verifier()) == []


@pytest.mark.anyio
async def test_a_column_of_the_first_version_becomes_a_default_one(
        tmp_path: Path, signer: Signer) -> None:
    """Path columns were MATERIALIZED (ClickHouse computed every value at insert); an
    open makes them DEFAULT, which the transfer's values fill, keeping what they hold."""
    col = path_column("actor.id")
    store = _open(tmp_path, signer, ["actor.id"])
    try:
        await put(store, "a", ev(actor={"id": "u1"}))
        await store._ch(lambda c: c.command(
            f"ALTER TABLE auditstream.events MODIFY COLUMN {col} Nullable(String) "
            f"MATERIALIZED {path_expr('actor.id')}"))
    finally:
        await store.close()
    store = _open(tmp_path, signer, ["actor.id"])
    try:
        kind = await store._ch(lambda c: c.query(
            "SELECT default_kind, comment FROM system.columns WHERE database = 'auditstream' "
            f"AND table = 'events' AND name = '{col}'").result_rows)
        assert kind == [("DEFAULT", "actor.id")]
        await put(store, "a", ev(actor={"id": "u1"}))
        assert await store.count("a", Eq("actor.id", ("u1",))) == 2
    finally:
        await store.close()
    assert audit_clickhouse(tmp_path, signer.verifier()) == []
