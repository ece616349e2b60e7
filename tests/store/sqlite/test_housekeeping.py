"""Housekeeping of the log: expired Idempotency-Key answers go, checkpoints are thinned to
the latest, the powers of two and the newest of each hour, and everything still proves."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from auditstream.dbapi import sqlite3
from auditstream.integrity import merkle
from auditstream.integrity.checkpoint import generate_signer, open_checkpoint
from auditstream.log.prepared import prepare
from auditstream.log.protocol import AppendRequest
from auditstream.log.sequencer import Sequencer
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us
from auditstream.store.sqlite import SQLiteEventStore, open_log
from auditstream.store.sqlite.audit import verify_db

HOUR_US = 3_600_000_000


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def request(tenant: str, clock: Clock, n: int = 1, **kw: Any) -> AppendRequest:
    now = format_us(clock.now)
    events = [{"id": new_event_id(), "tenant": tenant, "timestamp": now, "received_at": now,
               "type": "x", "severity": "info"} for _ in range(n)]
    return AppendRequest(tenant, tuple(prepare(events, canonical=True, path_segments=[])),
                         **kw)


def test_idempotency_answers_expire_and_checkpoints_thin(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    signer = generate_signer("auditstream.local")
    opened = open_log(str(db), indexed_paths=[], synchronous="normal", idempotency_hours=24,
                      signer=signer, deployment="auditstream.local")
    assert opened.sequencer is not None
    clock = Clock(1_780_000_000_000_000)
    seq = Sequencer(opened.sequencer.storage, signer=signer, deployment="auditstream.local",
                    idempotency_us=24 * HOUR_US, clock=clock)
    seq.HOUSEKEEPING_COMMITS = 10**9  # only when asked, below
    first = seq.apply([request("acme", clock, idempotency_key="k", request_hash="h")])
    [a] = first[0][0].result()
    for _ in range(99):  # 100 commits: 100 checkpoints
        seq.apply([request("acme", clock)])
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 100

    clock.now += 25 * HOUR_US
    expired, thinned = seq.housekeeping()
    assert expired == 1
    sizes = [s for (s,) in conn.execute("SELECT size FROM checkpoints ORDER BY size")]
    assert sizes == [1, 2, 4, 8, 16, 32, 64, 100] and thinned == 92
    # The expired key makes a new request; the answer is no longer a replay.
    again = seq.apply([request("acme", clock, idempotency_key="k", request_hash="h")])
    assert again[0][0].result()[0].seq == 101 != a.seq
    # Checkpoints of every hour survive thinning: the newest of each.
    for _ in range(3):
        seq.apply([request("acme", clock)])
    clock.now += HOUR_US
    seq.apply([request("acme", clock)])
    seq.housekeeping()
    kept = [s for (s,) in conn.execute("SELECT size FROM checkpoints ORDER BY size")]
    assert 104 in kept and 105 in kept and 103 not in kept
    conn.close()
    opened.close()
    assert verify_db(db, signer.verifier()).ok


def test_proofs_at_thinned_sizes_are_signed_again(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    signer = generate_signer("auditstream.local")

    async def run() -> None:
        store = SQLiteEventStore(db, signer=signer)
        for _ in range(20):
            now = format_us(1_780_000_000_000_000)
            await store.append("acme", [{"id": new_event_id(), "tenant": "acme",
                                         "timestamp": now, "received_at": now, "type": "x",
                                         "severity": "info"}])
        conn = sqlite3.connect(db)
        conn.execute("DELETE FROM checkpoints WHERE size = 13")  # as thinning would
        conn.commit()
        conn.close()
        assert await store.checkpoints("acme", size=13) == []
        note = await store.sign_checkpoint("acme", 13)
        cp = open_checkpoint(note, signer.verifier())
        nodes = await store.merkle_nodes("acme", merkle.root_node_ids(13))
        assert cp.size == 13 and cp.root == merkle.root_hash(13, lambda lv, i: nodes[lv, i])
        await store.close()

    asyncio.run(run())
