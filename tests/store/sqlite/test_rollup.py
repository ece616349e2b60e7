"""SQLite specifics of the hourly rollups: backfill of a database that predates them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from auditstream.dbapi import sqlite3
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us
from auditstream.query.filter import All, Cmp, and_
from auditstream.store.base import AggregateSpec
from auditstream.store.sqlite import SQLiteEventStore

HOUR = 3_600_000_000
T0 = 1_780_000_000_000_000


def test_rollups_are_backfilled_for_an_older_database(tmp_path: Path) -> None:
    db = tmp_path / "old.db"

    async def fill() -> None:
        s = SQLiteEventStore(db)
        await s.append("a", [{"id": new_event_id(), "tenant": "a", "type": t,
                              "timestamp": format_us(T0 + i * HOUR // 3),
                              "received_at": format_us(T0), "severity": "info"}
                             for i, t in enumerate(["x", "y", "x", "x", "y", "z"] * 5)])
        await s.close()

    asyncio.run(fill())
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE rollup_hour")
    conn.commit()
    conn.close()

    async def check() -> dict[str, int]:
        s = SQLiteEventStore(db)
        try:
            where = and_(Cmp("timestamp", ">=", T0), Cmp("timestamp", "<", T0 + 20 * HOUR))
            b = await s.aggregate("a", where, AggregateSpec(group_by="type"))
            assert (await s.aggregate("a", All(), AggregateSpec()))[0].rows[0].count == 30
            return {r.key: r.count for r in b[0].rows}
        finally:
            await s.close()

    assert asyncio.run(check()) == {"x": 15, "y": 10, "z": 5}
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT SUM(n) FROM rollup_hour").fetchone()[0] == 30
    conn.close()
