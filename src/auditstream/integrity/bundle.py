"""Export bundles: a tenant's events with inclusion proofs against one signed checkpoint.

NDJSON, so writing and checking run in constant memory: a header line
``{"format", "tenant", "origin", "tree_size", "checkpoint", "public_key"}`` then one line
per event ``{"event", "leaf_index", "inclusion_path"}`` (plus ``leaf_hash`` for redacted
events, whose content can no longer be hashed). ``auditstream.verifier`` checks it with
nothing but the public key. Written through the ``EventStore`` interface, so any backend
can produce one.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import IO

import orjson

from ..query.filter import All
from ..store.base import EventStore
from . import merkle, redaction
from .checkpoint import Checkpoint, Verifier, open_checkpoint
from .witness import check_extension

FORMAT = "auditstream.bundle/v1"


def _getter(nodes: dict[tuple[int, int], bytes]) -> merkle.NodeGetter:
    return lambda level, index: nodes[level, index]


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


async def write_bundle(
    store: EventStore, tenant: str, out: IO[bytes], verifier: Verifier,
    *, previous: Checkpoint | None = None, progress: Callable[[int], None] | None = None,
) -> tuple[int, str]:
    """Write the bundle of the tenant's latest checkpoint; returns (events, its note).

    With ``previous`` (a checkpoint seen before), first proves the latest one extends it,
    raising ``witness.RollbackError`` / ``ForkError`` (nothing written) if not.
    """
    stored = await store.checkpoints(tenant)
    if not stored:
        raise LookupError(f"tenant {tenant!r} has no signed checkpoint yet")
    note = stored[0].note
    current = open_checkpoint(note, verifier)  # the file could hold anything: check it
    size = current.size
    if previous is not None:
        proof: list[bytes] = []
        if 0 < previous.size < size:
            nodes = await store.merkle_nodes(
                tenant, merkle.consistency_node_ids(previous.size, size))
            proof = merkle.consistency_path(previous.size, size, _getter(nodes))
        check_extension(previous, current, proof)
    out.write(orjson.dumps({
        "format": FORMAT, "tenant": tenant, "origin": current.origin, "tree_size": size,
        "checkpoint": note, "public_key": verifier.key_string(),
    }) + b"\n")
    n = 0
    async for batch in store.scan(tenant, All(), batch=500):
        batch = [ev for ev in batch if ev["seq"] <= size]
        if not batch:
            break
        ids = {(0, ev["seq"] - 1) for ev in batch}
        for ev in batch:
            ids.update(merkle.inclusion_node_ids(ev["seq"] - 1, size))
        nodes = await store.merkle_nodes(tenant, sorted(ids))
        for ev in batch:
            index = ev["seq"] - 1
            item = {"event": ev, "leaf_index": index, "inclusion_path": [
                _b64(h) for h in merkle.inclusion_path(index, size, _getter(nodes))]}
            if redaction.is_stub(ev):
                item["leaf_hash"] = _b64(nodes[0, index])
            out.write(orjson.dumps(item) + b"\n")
        n += len(batch)
        if progress is not None:
            progress(len(batch))
    return n, note
