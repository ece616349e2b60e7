"""The hourly counts (``store.clickhouse.rollup``): count aggregates read them for whole
hours of complete blocks and ``events`` for the rest, and answer exactly what counting
the events one by one answers; redactions, re-sent ranges, other block sizes and tampering
are covered here and in test_transfer.py."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from auditstream.integrity.checkpoint import Signer
from auditstream.model.severity import RANK
from auditstream.query.filter import All, And, Cmp, Eq, Node
from auditstream.store.base import AggregateSpec
from auditstream.store.clickhouse import ClickHouseEventStore
from auditstream.store.clickhouse.audit import verify_index
from auditstream.store.clickhouse.engine import Engine
from auditstream.store.clickhouse.store import _rollup_plan

from ..backends import DEPLOYMENT, T0, chdb_url, ev, everything, put

HOUR = 3_600_000_000
TYPES = ("login", "install", "llm.call")
SEVERITIES = ("info", "medium", "high")


def _open(directory: Path, signer: Signer, block: int) -> ClickHouseEventStore:
    return ClickHouseEventStore(directory / "store.db", clickhouse_url=chdb_url(directory),
                                signer=signer, deployment=DEPLOYMENT, rollup_block=block)


def _events(n: int, seed: int = 5) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        # Times around 1970 too: buckets are floored below zero as above it.
        base = T0 if i % 5 else -3 * HOUR
        out.append(ev(rng.choice(TYPES), ts=base + rng.randrange(0, 30 * HOUR),
                      severity=rng.choice(SEVERITIES),
                      outcome=rng.choice(("success", "failure", None)) or None,
                      category=rng.choice(("auth", "supply-chain"))))
    return [{k: v for k, v in e.items() if v is not None} for e in out]


def _expected(events: list[dict[str, Any]], keep: Any, spec: AggregateSpec
              ) -> list[tuple[int | None, Any, int]]:
    from auditstream.model.times import parse_us
    from auditstream.store.clickhouse.aggregate import bucket_of

    counts: Counter[tuple[int | None, Any]] = Counter()
    for e in events:
        if keep(e):
            key = e.get(spec.group_by) if spec.group_by else None
            if spec.group_by and key in (None, ""):
                continue
            counts[bucket_of(parse_us(e["timestamp"]), spec.interval), key] += 1
    return sorted(((b, k, n) for (b, k), n in counts.items()),
                  key=lambda r: (r[0] is not None, r[0], -r[2], str(r[1])))


CASES: list[tuple[str, Node, Any, AggregateSpec]] = [
    ("all by type and hour", All(), lambda e: True, AggregateSpec("type", "hour")),
    ("all by day", All(), lambda e: True, AggregateSpec(None, "day")),
    ("all by type, no buckets", All(), lambda e: True, AggregateSpec("type")),
    ("all by week and severity", All(), lambda e: True, AggregateSpec("severity", "week")),
    ("a range with partial edge hours, by outcome",
     And((Cmp("timestamp", ">=", T0 + HOUR // 3), Cmp("timestamp", "<", T0 + 20 * HOUR + 7))),
     lambda e: T0 + HOUR // 3 <= _us(e) < T0 + 20 * HOUR + 7,
     AggregateSpec("outcome", "hour")),
    ("open-ended ranges with > and <=",
     And((Cmp("timestamp", ">", T0 + 5 * HOUR), Cmp("timestamp", "<=", T0 + 9 * HOUR))),
     lambda e: T0 + 5 * HOUR < _us(e) <= T0 + 9 * HOUR, AggregateSpec("type", "hour")),
    ("bounds beyond any time", And((Cmp("timestamp", ">", -10**30),
                                    Cmp("timestamp", "<", 10**30))),
     lambda e: True, AggregateSpec("type", "day")),
    ("nothing after the end of time", Cmp("timestamp", ">=", 10**30), lambda e: False,
     AggregateSpec("type", "hour")),
    ("nothing before its start", Cmp("timestamp", "<", -10**30), lambda e: False,
     AggregateSpec("type", "hour")),
    ("a type and a severity floor", And((Eq("type", ("login", "install")),
                                          Cmp("severity", ">=", "medium"))),
     lambda e: e["type"] in ("login", "install") and RANK[e["severity"]] >= RANK["medium"],
     AggregateSpec("category", "day")),
]


def _us(e: dict[str, Any]) -> int:
    from auditstream.model.times import parse_us

    return parse_us(e["timestamp"])


@pytest.mark.anyio
async def test_counts_from_the_rollup_equal_counting_each_event(tmp_path: Path,
                                                                signer: Signer) -> None:
    events = _events(150)
    store = _open(tmp_path, signer, block=8)
    try:
        for start in range(0, len(events), 7):  # commits that end inside blocks
            await put(store, "a", *events[start:start + 7])
        with store.engine.client() as c:
            assert c.query("SELECT count() FROM auditstream.hourly_8").result_rows[0][0] > 0
        for name, where, keep, spec in CASES:
            assert _rollup_plan(where, spec) is not None, name
            got = await store.aggregate_counts("a", where, spec)
            assert got == _expected(events, keep, spec), name
        # A redaction keeps what is counted (the stub keeps type, time, severity …); its
        # record is one more event, counted like the others.
        await store.redact("a", (await everything(store, "a"))[3]["id"], "test")
        stored = await everything(store, "a")
        assert len(stored) == len(events) + 1 and "redacted" in stored[3]
        for spec in (AggregateSpec("type", "hour"), AggregateSpec("severity")):
            assert await store.aggregate_counts("a", All(), spec) == _expected(
                stored, lambda e: True, spec)
    finally:
        await store.close()
    engine = Engine(chdb_url(tmp_path), clients=1)
    try:
        assert verify_index(engine, str(tmp_path / "store.db")) == []
    finally:
        engine.close()


@pytest.mark.anyio
async def test_an_index_without_counts_is_counted_when_opened(tmp_path: Path,
                                                             signer: Signer) -> None:
    # An index written with blocks of 8 (or before the rollup existed) opened with blocks
    # of 16: the new table is filled from `events` at migrate, then kept by the indexer.
    events = _events(60, seed=9)
    store = _open(tmp_path, signer, block=8)
    try:
        await put(store, "a", *events[:40])
    finally:
        await store.close()
    store = _open(tmp_path, signer, block=16)
    try:
        await put(store, "a", *events[40:])
        spec = AggregateSpec("type", "hour")
        assert await store.aggregate_counts("a", All(), spec) == _expected(
            events, lambda e: True, spec)
        with store.engine.client() as c:
            assert c.query("SELECT sum(n) FROM auditstream.hourly_16 FINAL WHERE block < 3"
                           ).result_rows[0][0] == 48
    finally:
        await store.close()
    engine = Engine(chdb_url(tmp_path), clients=1)
    try:  # the table of 8 is gone (it would have gone stale); the one of 16 holds
        with engine.client() as c:
            assert c.query("EXISTS TABLE auditstream.hourly_8").result_rows[0][0] == 0
        assert verify_index(engine, str(tmp_path / "store.db")) == []
    finally:
        engine.close()
