"""Export bundles: a tenant's events with inclusion proofs against one signed checkpoint.

NDJSON, so writing and checking run in constant memory: a header line
``{"format", "tenant", "origin", "tree_size", "checkpoint", "public_key"}`` then one line
per event ``{"event", "leaf_index", "inclusion_path"}`` (plus ``leaf_hash`` for redacted
events, whose content can no longer be hashed). ``auditstream.verifier`` checks it with
nothing but the public key.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import IO

import orjson

from ..dbapi import sqlite3
from ..store.sqlite.ledger import NodeReader
from . import merkle
from .checkpoint import Signer

FORMAT = "auditstream.bundle/v1"


def write_bundle(
    db: str | Path, tenant: str, out: IO[bytes], signer: Signer,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the bundle of the tenant's latest checkpoint; returns the number of events."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT size, note FROM checkpoints WHERE tenant = ? ORDER BY size DESC LIMIT 1",
            (tenant,)).fetchone()
        size, note = row if row else (0, None)
        if note is None:
            raise LookupError(f"tenant {tenant!r} has no signed checkpoint yet")
        origin = note.split("\n", 1)[0]
        out.write(orjson.dumps({
            "format": FORMAT, "tenant": tenant, "origin": origin, "tree_size": size,
            "checkpoint": note, "public_key": signer.verifier_key(),
        }) + b"\n")
        get = NodeReader(conn, tenant)
        n = 0
        for seq, body, leaf in conn.execute(
            "SELECT seq, body, leaf FROM events WHERE tenant = ? AND seq <= ? ORDER BY seq",
            (tenant, size),
        ):
            ev = orjson.loads(body)
            item = {
                "event": ev, "leaf_index": seq - 1,
                "inclusion_path": [base64.b64encode(h).decode()
                                   for h in merkle.inclusion_path(seq - 1, size, get)],
            }
            if "redacted" in ev:
                item["leaf_hash"] = base64.b64encode(bytes(leaf)).decode()
            out.write(orjson.dumps(item) + b"\n")
            n += 1
            if progress is not None and n % 1000 == 0:
                progress(1000)
        if progress is not None:
            progress(n % 1000)
        return n
    finally:
        conn.close()
