"""``IntegrationService``: what ``/v1/integrations`` and ``auditstream integrations`` do.

Answers are plain dicts in the documented shapes (``api/native/contract.py``); configs
come back with their secrets masked (``"********"``), except a secret auditstream
generated, which the create answer returns once, as ``secret``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidRequest, NotFound
from ..model.ids import new_event_id
from ..model.times import format_us
from ..query.filter import Cmp, and_
from ..store.base import EventStore
from .deliverer import build_sink, message_id
from .guard import DestinationPolicy
from .integration import Attempt, DeadLetter, Integration, parse_create, parse_update
from .sinks import SinkContext
from .state import StateStore
from .supervisor import DeliverySupervisor

MASK = "********"
#: Most seqs one redeliver request names.
MAX_REDELIVER_SEQS = 1000


def _time(seconds: float | None) -> str | None:
    return None if seconds is None else format_us(int(seconds * 1_000_000))


def attempt_doc(a: Attempt) -> dict[str, Any]:
    return {"at": _time(a.at), "action": a.action, "ok": a.ok, "first_seq": a.first_seq,
            "last_seq": a.last_seq, "events": a.events, "status_code": a.status_code,
            "latency_ms": a.latency_ms, "error": a.error, "message_id": a.message_id,
            "response": a.response}


def letter_doc(d: DeadLetter) -> dict[str, Any]:
    return {"seq": d.seq, "event_id": d.event_id, "attempts": d.attempts,
            "last_error": d.last_error, "dead_at": _time(d.dead_at),
            "redeliver_requested": d.redeliver_requested}


def test_event(tenant: str, integration: Integration, now: float) -> dict[str, Any]:
    when = _time(now)
    return {
        "id": new_event_id(), "tenant": tenant, "seq": 0, "timestamp": when,
        "received_at": when, "type": "auditstream.test", "category": "system",
        "severity": "info", "outcome": "success",
        "title": "Test event from auditstream",
        "description": f"A test message of the integration {integration.name!r}; "
                       "nothing happened.",
        "actor": {"type": "system", "id": "auditstream"},
        "tags": ["test"],
    }


class IntegrationService:
    def __init__(self, state: StateStore, store: EventStore, context: SinkContext,
                 supervisor: DeliverySupervisor | None = None):
        self.state = state
        self.store = store
        self.context = context
        self.supervisor = supervisor

    @property
    def policy(self) -> DestinationPolicy:
        return self.context.policy

    def _changed(self, integration_id: str) -> None:
        if self.supervisor is not None:
            self.supervisor.poke(integration_id)

    def _get(self, tenant: str, integration_id: str) -> Integration:
        found = self.state.get(tenant, integration_id)
        if found is None:
            raise NotFound(f"no integration {integration_id[:100]!r}")
        return found

    async def lag(self, i: Integration) -> int:
        """Matching events after the cursor."""
        return await self.store.count(
            i.tenant, and_(i.where(), Cmp("seq", ">", i.progress.cursor)))

    async def public(self, i: Integration) -> dict[str, Any]:
        secret = i.sink.SECRETS
        p = i.progress
        return {
            "id": i.id, "name": i.name, "kind": i.kind, "format": i.format, "rule": i.rule,
            "config": {k: MASK if k in secret else v for k, v in i.config.items()},
            "enabled": i.enabled, "state": i.state, "cursor": p.cursor,
            "lag": await self.lag(i),
            "failures": p.failures,
            "next_attempt_at": _time(p.retry_at) if i.enabled and p.failures else None,
            "last_attempt_at": _time(i.last_attempt_at),
            "last_success_at": _time(i.last_success_at),
            "last_error": i.last_error, "last_error_at": _time(i.last_error_at),
            "dead_letters": await asyncio.to_thread(self.state.dead_letter_count, i.id),
            "created_at": _time(i.created_at), "updated_at": _time(i.updated_at),
        }

    async def create(self, tenant: str, doc: Any) -> dict[str, Any]:
        integration, generated = parse_create(
            doc, tenant, self.policy, last_seq=await self.store.last_seq(tenant),
            at=self.context.clock.now())
        await asyncio.to_thread(self.state.create, integration)
        self._changed(integration.id)
        return {**await self.public(integration), **generated}

    async def list_for(self, tenant: str) -> list[dict[str, Any]]:
        return [await self.public(i) for i in self.state.by_tenant(tenant)]

    async def show(self, tenant: str, integration_id: str) -> dict[str, Any]:
        return await self.public(self._get(tenant, integration_id))

    async def update(self, tenant: str, integration_id: str, doc: Any) -> dict[str, Any]:
        changes = parse_update(doc, self._get(tenant, integration_id), self.policy)
        updated = await asyncio.to_thread(self.state.update, tenant, integration_id, changes,
                                          self.context.clock.now())
        if updated is None:
            raise NotFound(f"no integration {integration_id[:100]!r}")
        self._changed(integration_id)
        return await self.public(updated)

    def delete(self, tenant: str, integration_id: str) -> None:
        if not self.state.delete(tenant, integration_id):
            raise NotFound(f"no integration {integration_id[:100]!r}")
        self._changed(integration_id)

    async def test(self, tenant: str, integration_id: str) -> dict[str, Any]:
        """Send a test event now, from this process, outside the cursor: what a person
        debugging a silent integration runs first."""
        i = self._get(tenant, integration_id)
        event = test_event(tenant, i, self.context.clock.now())
        sink = build_sink(i, self.context)
        mid = message_id(i.id, [event["id"]])
        try:
            outcome = await sink.send([event], mid)
        finally:
            await sink.aclose()
        attempt = Attempt(integration_id=i.id, at=self.context.clock.now(), action="test",
                          ok=outcome.ok, status_code=outcome.status_code,
                          latency_ms=round(outcome.latency_ms, 3), error=outcome.error,
                          message_id=mid, response=outcome.response)
        await asyncio.to_thread(self.state.add_attempt, attempt)
        return attempt_doc(attempt)

    def attempts(self, tenant: str, integration_id: str, limit: int) -> list[dict[str, Any]]:
        self._get(tenant, integration_id)
        return [attempt_doc(a) for a in self.state.attempts(tenant, integration_id, limit)]

    def dead_letters(self, tenant: str, integration_id: str, after_seq: int,
                     limit: int) -> dict[str, Any]:
        self._get(tenant, integration_id)
        letters = self.state.dead_letters(tenant, integration_id, after_seq=after_seq,
                                          limit=limit + 1)
        more = len(letters) > limit
        letters = letters[:limit]
        return {"data": [letter_doc(d) for d in letters],
                "next_after_seq": letters[-1].seq if more else None}

    def redeliver(self, tenant: str, integration_id: str, doc: Any) -> dict[str, Any]:
        """Mark dead letters for redelivery: ``{"seqs": [..]}``, or all of them."""
        self._get(tenant, integration_id)
        seqs: Sequence[int] | None = None
        if doc is not None:
            if not isinstance(doc, dict) or set(doc) - {"seqs"}:
                raise InvalidRequest("expected {\"seqs\": [seq, …]} or no body", errors=[
                    {"field": "seqs", "reason": "the only field"}])
            raw = doc.get("seqs")
            if raw is not None:
                if not isinstance(raw, list) or len(raw) > MAX_REDELIVER_SEQS or not all(
                        isinstance(s, int) and not isinstance(s, bool) and 0 < s < 2**63
                        for s in raw):
                    raise InvalidRequest("invalid seqs", errors=[{"field": "seqs", "reason": (
                        f"a list of at most {MAX_REDELIVER_SEQS} positive integers")}])
                seqs = raw
        count = self.state.request_redelivery(tenant, integration_id, seqs)
        self._changed(integration_id)
        return {"requested": count}


__all__ = ["IntegrationService", "MASK"]
