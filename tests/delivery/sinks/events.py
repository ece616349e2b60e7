"""Canonical events as the store hands them to a sink, and hostile values for them."""

from __future__ import annotations

from typing import Any

from auditstream.delivery.clock import ManualClock
from auditstream.delivery.guard import DestinationPolicy
from auditstream.delivery.sinks import SinkContext

#: Every character some format has to escape, and some that a naive one breaks on.
HOSTILE = 'a"b\\c]d|e=f\ng\rh <script>alert(1)</script> & <!channel> <http://x|y> é😀\u202e'


def event(seq: int = 1, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"evt_{seq:026d}",
        "tenant": "acme",
        "seq": seq,
        "timestamp": "2026-01-02T03:04:05.123456Z",
        "received_at": "2026-01-02T03:04:06Z",
        "type": "user.login",
        "category": "auth",
        "severity": "high",
        "outcome": "failure",
        "title": "Failed login",
        "description": "Wrong password",
        "actor": {"type": "user", "id": "u1", "name": "alice", "ip": "203.0.113.9"},
        "subject": {"type": "account", "id": "acct-7"},
        "source": {"ip": "198.51.100.4"},
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def context(allow: str = "127.0.0.1", timeout: float = 5.0) -> SinkContext:
    return SinkContext(policy=DestinationPolicy(allow), clock=ManualClock(),
                       timeout=timeout, deployment="audit.example")


def stub(seq: int = 1) -> dict[str, Any]:
    """A redacted event as the store keeps it: only its place in the log and rollups."""
    keeps = ("id", "tenant", "seq", "timestamp", "received_at", "type", "category",
             "severity", "outcome")
    e = {k: v for k, v in event(seq).items() if k in keeps}
    e["redacted"] = {"at": "2026-02-01T00:00:00Z", "reason": "gdpr", "by": 9}
    return e
