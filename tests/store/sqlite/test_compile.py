"""The SQL compiler at the edges: prefixes at the end of Unicode, trees too large for SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from auditstream.dbapi import sqlite3
from auditstream.errors import InvalidRequest
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us
from auditstream.query.filter import And, Eq, Node, Not, Or, Prefix, Text
from auditstream.query.predicate import compile_predicate
from auditstream.store.sqlite import SQLiteEventStore
from auditstream.store.sqlite.compile import Compiler

T0 = 1_780_000_000_000_000
MAX = "\U0010ffff"
TYPES = ["abc", "abc" + MAX, "abc" + MAX + "x", "abc" + MAX + MAX, "abd", MAX, MAX + "z",
         "abc\ud7ff", "abc\ud7ffz", "abc\ue000", "ab\ud7ff" + MAX, "ac"]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[sqlite3.Connection, Compiler]:
    path: Path = tmp_path_factory.mktemp("compile") / "c.db"
    events: list[dict[str, Any]] = [
        {"id": new_event_id(), "tenant": "t", "timestamp": format_us(T0 + i),
         "received_at": format_us(T0), "type": t, "severity": "info",
         "title": "hello world" if i % 2 else "hello there"}
        for i, t in enumerate(TYPES)]

    async def load() -> dict[str, str]:
        store = SQLiteEventStore(path)
        await store.append("t", events)
        await store.close()
        return store.path_columns

    cols = asyncio.run(load())
    return sqlite3.connect(path), Compiler(cols)


def select(db: tuple[sqlite3.Connection, Compiler], node: Node) -> set[str]:
    conn, compiler = db
    sql, params = compiler.where(node)
    return {r[0] for r in conn.execute(f"SELECT type FROM events WHERE {sql}", params)}


@pytest.mark.parametrize("prefix", ["abc" + MAX, MAX, "abc" + MAX + MAX, "abc\ud7ff",
                                    "ab\ud7ff" + MAX, "abc", "ab"])
def test_prefix_ending_in_the_last_code_points_matches_like_the_predicate(
    db: tuple[sqlite3.Connection, Compiler], prefix: str
) -> None:
    want = {t for t in TYPES if t.startswith(prefix)}
    pred = compile_predicate(Prefix("type", prefix))
    assert want == {t for t in TYPES if pred({"type": t})}
    assert select(db, Prefix("type", prefix)) == want


@pytest.mark.parametrize("term", ["\x00hello", "hello\x00world", "\x00", "wor\x00*",
                                  'hello"\x00'])
def test_nul_in_a_text_term_is_a_separator_like_in_the_predicate(
    db: tuple[sqlite3.Connection, Compiler], term: str
) -> None:
    """FTS5 reads NUL as the end of its query string ("unterminated string", a 500)."""
    pred = compile_predicate(Text((term,)))
    want = {t for i, t in enumerate(TYPES)
            if pred({"type": t, "title": "hello world" if i % 2 else "hello there"})}
    assert select(db, Text((term,))) == want


@pytest.mark.parametrize(("node", "reason"), [
    (And(tuple(Eq(f"context.k{i}", ("1",)) for i in range(513))), "513 conditions"),
    (Text(tuple(["a"] * 600)), "600 conditions"),
    (Eq("type", tuple(str(i) for i in range(5000))), "5000 filter values"),
    (Or((Not(Not(Not(Eq("type", ("a",))))), Eq("type", ("a",)))), None),
])
def test_trees_beyond_the_bounds_are_refused_before_sqlite_sees_them(
    db: tuple[sqlite3.Connection, Compiler], node: Node, reason: str | None
) -> None:
    if reason is None:  # within bounds: compiles and runs
        assert select(db, node) == set(TYPES) - {"a"}
        return
    with pytest.raises(InvalidRequest) as info:
        select(db, node)
    assert reason in info.value.errors[0]["reason"]


def test_deep_trees_are_refused() -> None:
    node: Node = Eq("type", ("a",))
    for _ in range(300):
        node = Not(node)
    with pytest.raises(InvalidRequest, match="too large"):
        Compiler({}).where(node)
    nested: Node = Eq("type", ("a",))
    for _ in range(63):
        nested = Not(nested)
    Compiler({}).where(nested)  # 64 levels, the leaf included: the most allowed
