"""Aggregate semantics (store/base.py ``EventStore.aggregate``), per backend: nearest-rank
percentiles, numeric metrics, distinct counts, group keys, week buckets, ``max_groups``.

Every rule is tried on a declared (indexed) path and on one that is not: how a deployment
indexes its paths must never change an answer.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from auditstream.model.times import parse_us
from auditstream.query.filter import All
from auditstream.store.base import AggregateSpec, EventStore

from .backends import HOUR, INDEXED, T0, ev, put

pytestmark = pytest.mark.anyio

INDEXED_PATH = "actor.id"
PLAIN_PATH = "context.latency_ms"
assert INDEXED_PATH in INDEXED and PLAIN_PATH not in INDEXED
PATHS = [INDEXED_PATH, PLAIN_PATH]


def with_value(path: str, value: Any, type_: str = "x", **fields: Any) -> dict[str, Any]:
    head, attr = path.split(".")
    return ev(type_, **{head: {attr: value}}, **fields)


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@pytest.mark.parametrize("path", PATHS)
async def test_percentiles_are_nearest_rank(store: EventStore, path: str) -> None:
    """p50/p95/p99 are the value at rank ceil(q·n) of the group's sorted numeric values:
    always a value that occurred, never an interpolation."""
    rnd = random.Random(9)
    groups: dict[str, list[float]] = {}
    events = []
    for n in [1, 2, 3, 4, 10, 19, 20, 21, 99, 100, 101]:
        values: list[float] = [rnd.choice([rnd.randint(-50, 1000), rnd.uniform(0, 10)])
                               for _ in range(n)]
        groups[f"g{n}"] = values
        events += [with_value(path, v, f"g{n}") for v in values]
        events.append(ev(f"g{n}"))  # no value: counted, not measured
        events.append(with_value(path, "12", f"g{n}"))  # a string is not a number
    rnd.shuffle(events)
    await put(store, "a", *events)
    metrics = tuple((fn, path) for fn in ["p50", "p95", "p99", "min", "max", "sum", "avg"])
    (bucket,) = await store.aggregate("a", All(), AggregateSpec(group_by="type",
                                                                metrics=metrics))
    assert {r.key for r in bucket.rows} == set(groups)
    for row in bucket.rows:
        values = groups[row.key]
        got = row.metrics[path]
        assert row.count == len(values) + 2
        assert got["p50"] == nearest_rank(values, 0.50)
        assert got["p95"] == nearest_rank(values, 0.95)
        assert got["p99"] == nearest_rank(values, 0.99)
        assert (got["min"], got["max"]) == (min(values), max(values))
        assert got["sum"] == pytest.approx(sum(values))
        assert got["avg"] == pytest.approx(sum(values) / len(values))


@pytest.mark.parametrize("path", PATHS)
async def test_metrics_of_a_group_without_numbers_are_none(store: EventStore,
                                                           path: str) -> None:
    await put(store, "a", ev("none"), with_value(path, "7", "none"), with_value(path, 3, "some"))
    metrics = tuple((fn, path) for fn in ["p50", "p99", "min", "max", "sum", "avg"])
    (bucket,) = await store.aggregate("a", All(), AggregateSpec(group_by="type",
                                                                metrics=metrics))
    rows = {r.key: r for r in bucket.rows}
    assert rows["none"].count == 2
    assert rows["none"].metrics[path] == dict.fromkeys(["p50", "p99", "min", "max", "sum",
                                                        "avg"])
    assert rows["some"].metrics[path]["p99"] == 3


@pytest.mark.parametrize("path", PATHS)
async def test_percentiles_per_bucket_and_group(store: EventStore, path: str) -> None:
    hour0 = T0 - T0 % HOUR
    await put(store, "a", *[with_value(path, v, "x", ts=hour0 + i) for i, v in
                            enumerate([5, 1, 4, 2, 3])],
              *[with_value(path, v, "x", ts=hour0 + HOUR + i) for i, v in enumerate([10, 30])],
              *[with_value(path, v, "y", ts=hour0 + HOUR) for v in [7]])
    await put(store, "b", with_value(path, 1000, "x", ts=hour0))  # another tenant's
    got = await store.aggregate("a", All(), AggregateSpec(
        group_by="type", interval="hour", metrics=(("p50", path), ("p95", path))))
    assert [(b.ts, [(r.key, r.metrics[path]["p50"], r.metrics[path]["p95"]) for r in b.rows])
            for b in got] == [
        (hour0, [("x", 3, 5)]),
        (hour0 + HOUR, [("x", 10, 30), ("y", 7, 7)]),
    ]


async def test_count_unique_counts_distinct_non_empty_values(store: EventStore) -> None:
    await put(store, "a", *[with_value(p, v) for p in PATHS
                            for v in ["u1", "u1", "u2", "", None, 7, 7.0, "7"]],
              ev())
    (bucket,) = await store.aggregate("a", All(), AggregateSpec(count_unique=tuple(PATHS)))
    # "u1", "u2", 7 (== 7.0) and "7": a number and a string are different values.
    assert bucket.rows[0].uniques == dict.fromkeys(PATHS, 4)


async def test_weeks_start_on_monday_utc(store: EventStore) -> None:
    monday = parse_us("2026-05-25T00:00:00Z")
    await put(store, "a", ev(ts=monday - 1), ev(ts=monday), ev(ts=monday + 7 * 24 * HOUR - 1),
              ev(ts=monday + 7 * 24 * HOUR))
    got = await store.aggregate("a", All(), AggregateSpec(interval="week"))
    week = 7 * 24 * HOUR
    assert [(b.ts, b.rows[0].count) for b in got] == [
        (monday - week, 1), (monday, 2), (monday + week, 1)]


async def test_max_groups_keeps_the_largest_groups_of_each_bucket(store: EventStore) -> None:
    await put(store, "a", *[ev(t) for t, n in [("a", 5), ("b", 1), ("c", 3), ("d", 4)]
                            for _ in range(n)])
    (bucket,) = await store.aggregate("a", All(), AggregateSpec(group_by="type", max_groups=2))
    assert [(r.key, r.count) for r in bucket.rows] == [("a", 5), ("d", 4)]


@pytest.mark.parametrize("path", [INDEXED_PATH, PLAIN_PATH])
async def test_booleans_are_not_numbers_in_metrics(store: EventStore, path: str) -> None:
    await put(store, "a", *[with_value(path, v) for v in [1, 2.5, True, False, "7", 10]])
    metrics = tuple((fn, path) for fn in ["sum", "min", "max", "avg", "p50"])
    (bucket,) = await store.aggregate("a", All(), AggregateSpec(metrics=metrics))
    assert bucket.rows[0].metrics[path] == {"sum": 13.5, "min": 1, "max": 10, "avg": 4.5,
                                            "p50": 2.5}


@pytest.mark.parametrize("path", [
    INDEXED_PATH, PLAIN_PATH, "requires_action",  # the last a top-level boolean
])
async def test_booleans_are_values_of_their_own_in_groups(store: EventStore,
                                                          path: str) -> None:
    """A group key is the value as stored: ``true`` stays ``True`` and is not ``1``."""
    def event(v: Any) -> dict[str, Any]:
        return ev(requires_action=v) if path == "requires_action" else with_value(path, v)

    await put(store, "a", *[event(v) for v in [True, True, False, 1, 1, 1, 0]])
    (bucket,) = await store.aggregate("a", All(), AggregateSpec(group_by=path))
    keys = sorted((type(r.key).__name__, r.key, r.count) for r in bucket.rows)
    assert keys == [("bool", False, 1), ("bool", True, 2), ("int", 0, 1), ("int", 1, 3)]
    (flat,) = await store.aggregate("a", All(), AggregateSpec(count_unique=(path,)))
    assert flat.rows[0].uniques == {path: 4}
