"""Appends to a store until it is killed (``test_lifecycle``): several tenants at once, so
appends meet in group commits, and now and then a redaction.

Usage: ``python -m store.crash_child BACKEND DIRECTORY SIGNING_KEY SEED`` (from ``tests``).
Prints one JSON line per acknowledged operation, flushed as soon as the store returned:
``["append", tenant, [[id, seq], …]]`` or ``["redact", tenant, id, by]``.
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

import orjson

from auditstream.integrity.checkpoint import Signer
from auditstream.store.base import EventStore

from .backends import BACKENDS, INDEXED, ev, put


def say(*line: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
    sys.stdout.buffer.flush()


async def client(store: EventStore, tenant: str, rnd: random.Random) -> None:
    n = 0
    while True:
        events = [ev(title=f"{tenant} {n} {i}", actor={"id": f"u{i % 7}"})
                  for i in range(rnd.randint(1, 60))]
        seqs = await put(store, tenant, *events)
        say("append", tenant, [[e["id"], s] for e, s in zip(events, seqs, strict=True)])
        if rnd.random() < 0.1:
            stub = await store.redact(tenant, events[0]["id"], "crash test")
            assert stub is not None
            say("redact", tenant, events[0]["id"], stub["redacted"]["by"])
        n += 1


async def main(backend: str, directory: str, key: str, seed: int) -> None:
    store = BACKENDS[backend].open(Path(directory), signer=Signer.from_key_string(key),
                                   indexed_paths=INDEXED)
    rnd = random.Random(seed)
    await asyncio.gather(*(client(store, t, random.Random(rnd.random()))
                           for t in ["a", "b", "c"] for _ in range(2)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
