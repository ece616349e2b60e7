"""The SQL compiler and the Python predicate select the same events (property test)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditstream.dbapi import sqlite3
from auditstream.model.ids import new_event_id
from auditstream.model.severity import SEVERITIES
from auditstream.model.times import format_us
from auditstream.query.filter import And, Cmp, Eq, Exists, Node, Not, Or, Prefix, Text
from auditstream.query.predicate import compile_predicate
from auditstream.store.sqlite import SQLiteEventStore
from auditstream.store.sqlite.compile import Compiler

TYPES = ["install", "user.created", "user.deleted", "ais_gap", "llm.call"]
OUTCOMES = ["allow", "block", None]
ZONES = ["lng_terminal", "gate_3", None]
WORDS = ["nordic", "star", "blocked", "left", "pad", "vessel", "gap"]
T0 = 1_780_000_000_000_000


def make_events(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(3)
    out = []
    for i in range(n):
        e: dict[str, Any] = {
            "id": new_event_id(), "tenant": "t", "timestamp": format_us(T0 + i * 1_000_000),
            "received_at": format_us(T0), "type": rnd.choice(TYPES),
            "severity": rnd.choice(SEVERITIES),
        }
        if (o := rnd.choice(OUTCOMES)) is not None:
            e["outcome"] = o
        if (z := rnd.choice(ZONES)) is not None:
            e["location"] = {"zone": z}
        if rnd.random() < 0.6:
            e["title"] = " ".join(rnd.sample(WORDS, 3)).title()
        if rnd.random() < 0.5:
            e["context"] = {"http_status": rnd.choice([200, 404, 500, "500"]),
                            "flag": rnd.choice([True, False])}
        if rnd.random() < 0.4:
            e["tags"] = rnd.sample(["a", "b", "c"], rnd.randint(0, 2))
        out.append(e)
    return out


EVENTS = make_events(300)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[sqlite3.Connection, Compiler]:
    path: Path = tmp_path_factory.mktemp("eq") / "eq.db"

    async def load() -> dict[str, str]:
        store = SQLiteEventStore(path, indexed_paths=["location.zone"])
        await store.append("t", [dict(e) for e in EVENTS])
        await store.close()
        return store.path_columns

    cols = asyncio.run(load())
    return sqlite3.connect(path), Compiler(cols)


paths = st.sampled_from(["type", "outcome", "location.zone", "context.http_status",
                         "context.flag", "severity", "tags", "title"])
scalars = st.one_of(st.sampled_from(TYPES + ["allow", "block", "lng_terminal", "a", "b"]),
                    st.sampled_from([200, 404, 500, "500", True, False, 500.0]),
                    st.sampled_from(SEVERITIES))
leaves = st.one_of(
    st.builds(lambda p, v: Eq(p, tuple(v)), paths, st.lists(scalars, min_size=1, max_size=3)),
    st.builds(lambda op, v: Cmp("severity", op, v), st.sampled_from([">", ">=", "<", "<="]),
              st.sampled_from(SEVERITIES)),
    st.builds(lambda op, d: Cmp("timestamp", op, T0 + d * 1_000_000),
              st.sampled_from([">", ">=", "<", "<="]), st.integers(-5, 305)),
    st.builds(lambda op, v: Cmp("context.http_status", op, v),
              st.sampled_from([">", "<="]), st.sampled_from([404, 450, "404"])),
    st.builds(Prefix, st.sampled_from(["type", "outcome", "location.zone"]),
              st.sampled_from(["user.", "i", "lng", ""])),
    st.builds(Exists, st.sampled_from(["outcome", "location.zone", "context.http_status",
                                       "title", "tags"])),
    st.builds(lambda ws: Text(tuple(ws)),
              st.lists(st.sampled_from(WORDS + ["nordic star", "bl*", "star gap"]),
                       min_size=1, max_size=2)),
)
trees = st.recursive(
    leaves,
    lambda kids: st.one_of(
        st.builds(lambda c: And(tuple(c)), st.lists(kids, min_size=1, max_size=3)),
        st.builds(lambda c: Or(tuple(c)), st.lists(kids, min_size=1, max_size=3)),
        st.builds(Not, kids),
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node=trees)
def test_sql_matches_predicate(db: tuple[sqlite3.Connection, Compiler], node: Node) -> None:
    conn, compiler = db
    sql, params = compiler.where(node)
    got = {r[0] for r in conn.execute(f"SELECT id FROM events WHERE tenant='t' AND {sql}",
                                      params)}
    pred = compile_predicate(node)
    want = {e["id"] for e in EVENTS if pred(e)}
    assert got == want, node
