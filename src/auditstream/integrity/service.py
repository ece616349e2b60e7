"""Proofs and checkpoints of a tenant's log, composed from the store's stored nodes."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequest, NotFound
from ..store.base import EventStore
from . import merkle
from .origin import origin_for


def b64(h: bytes) -> str:
    return base64.b64encode(h).decode("ascii")


@dataclass
class LogService:
    store: EventStore
    public_key: str  # the C2SP verifier key of the checkpoints
    deployment: str

    def origin(self, tenant: str) -> str:
        return origin_for(self.deployment, tenant)

    async def latest_size(self, tenant: str) -> int:
        cps = await self.store.checkpoints(tenant)
        return cps[0].size if cps else 0

    async def root(self, tenant: str, size: int) -> bytes:
        nodes = await self.store.merkle_nodes(tenant, merkle.root_node_ids(size))
        return merkle.root_hash(size, lambda lvl, idx: nodes[lvl, idx])

    async def checkpoint(self, tenant: str, size: int | None = None) -> str:
        """The signed checkpoint (C2SP note) of ``size`` leaves, or of the latest commit."""
        stored = await self.store.checkpoints(tenant, size=size)
        if stored:
            return stored[0].note
        if size is None:
            size = 0
        if size > 0:
            await self._check_size(tenant, size, "tree_size")
        return await self.store.sign_checkpoint(tenant, size)

    async def _check_size(self, tenant: str, size: int, field: str) -> None:
        latest = await self.latest_size(tenant)
        if not 0 <= size <= latest:
            raise InvalidRequest(f"{field} out of range", errors=[
                {"field": field, "reason": f"must be between 0 and {latest}"}])

    async def inclusion(self, tenant: str, event_id: str, tree_size: int | None) -> dict[str, Any]:
        ev = await self.store.get(tenant, event_id)
        if ev is None:
            raise NotFound(f"no event {event_id!r}")
        index = int(ev["seq"]) - 1
        size = await self.latest_size(tenant) if tree_size is None else tree_size
        if size <= index:
            raise InvalidRequest("tree_size does not include this event", errors=[
                {"field": "tree_size", "reason": f"must be greater than {index}"}])
        await self._check_size(tenant, size, "tree_size")
        return {**await self.proof(tenant, index, size),
                "checkpoint": await self.checkpoint(tenant, size)}

    async def proof(self, tenant: str, index: int, size: int) -> dict[str, Any]:
        """The RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves
        (both already known to be in range)."""
        ids = merkle.inclusion_node_ids(index, size)
        nodes = await self.store.merkle_nodes(tenant, [*ids, (0, index)])
        path = merkle.inclusion_path(index, size, lambda lvl, idx: nodes[lvl, idx])
        return {
            "leaf_index": index,
            "tree_size": size,
            "leaf_hash": b64(nodes[0, index]),
            "inclusion_path": [b64(h) for h in path],
        }

    async def consistency(self, tenant: str, first: int, second: int | None) -> dict[str, Any]:
        to = await self.latest_size(tenant) if second is None else second
        await self._check_size(tenant, to, "to")
        if not 0 <= first <= to:
            raise InvalidRequest("from must not exceed to", errors=[
                {"field": "from", "reason": f"must be between 0 and {to}"}])
        ids = merkle.consistency_node_ids(first, to)
        nodes = await self.store.merkle_nodes(tenant, ids)
        path = merkle.consistency_path(first, to, lambda lvl, idx: nodes[lvl, idx])
        return {
            "from": first,
            "to": to,
            "from_root": b64(await self.root(tenant, first)),
            "to_root": b64(await self.root(tenant, to)),
            "consistency_path": [b64(h) for h in path],
        }
