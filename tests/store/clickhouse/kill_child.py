"""Appends until it kills itself at a step of the log → index transfer (``test_transfer``).

Usage: ``python -m store.clickhouse.kill_child DIRECTORY SIGNING_KEY STEP N`` (from
``tests``): appends batches of 10 events to tenant ``a``, printing ``[[id, seq], …]`` per
acknowledged batch, and SIGKILLs itself at the ``N``-th transfer's ``STEP`` (``insert``:
after the log commit, before the index insert; ``watermark``: after the index insert,
before the watermark moves).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import orjson

from auditstream.integrity.checkpoint import Signer
from auditstream.store.clickhouse import ClickHouseEventStore

from ..backends import DEPLOYMENT, ROLLUP_BLOCK, chdb_url, ev, put


async def main(directory: Path, key: str, step: str, n: int) -> None:
    seen = 0

    def hook(at: str) -> None:
        nonlocal seen
        if at == step:
            seen += 1
            if seen == n:
                os.kill(os.getpid(), signal.SIGKILL)

    store = ClickHouseEventStore(directory / "store.db", clickhouse_url=chdb_url(directory),
                                 signer=Signer.from_key_string(key), deployment=DEPLOYMENT,
                                 hook=hook, rollup_block=ROLLUP_BLOCK)
    while True:
        events = [ev(title=f"kill {i}") for i in range(10)]
        seqs = await put(store, "a", *events)
        sys.stdout.buffer.write(orjson.dumps([[e["id"], s] for e, s in zip(events, seqs,
                                                                         strict=True)]) + b"\n")
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])))
