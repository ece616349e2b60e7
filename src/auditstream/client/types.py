"""Typed results: what the SDK returns, as ``TypedDict``\\ s over the server's JSON.

They are plain ``dict``\\ s at run time (the canonical event is open: any nested object may
carry more attributes), typed for editors and mypy.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = ["Aggregate", "AggregateBucket", "AggregateRow", "Event", "Ingested"]


class Event(TypedDict, total=False):
    """A canonical event, as ``GET /v1/events/{id}`` returns it (see the design brief)."""

    id: str
    tenant: str
    seq: int
    timestamp: str
    received_at: str
    type: str
    category: str
    severity: str
    outcome: str
    title: str
    description: str
    actor: dict[str, Any]
    subject: dict[str, Any]
    source: dict[str, Any]
    location: dict[str, Any]
    context: dict[str, Any]
    llm: dict[str, Any]
    tags: list[str]
    metadata: dict[str, Any]
    payload: dict[str, Any]
    error_message: str
    incident_id: str
    assigned_to: str
    requires_action: bool
    #: Only on an event whose content was erased: ``{"at", "reason", "by"}``.
    redacted: dict[str, Any]


class Ingested(TypedDict):
    """Where one ingested event went: its id (given or assigned) and its seq."""

    id: str
    seq: int


class AggregateRow(TypedDict, total=False):
    key: Any  # only with group_by
    count: int
    uniques: dict[str, int]  # only with count_unique
    metrics: dict[str, Any]  # only with sum/avg/min/max/p50/p95/p99


class AggregateBucket(TypedDict, total=False):
    ts: str  # only with interval
    rows: list[AggregateRow]


class Aggregate(TypedDict):
    """The answer of ``GET /v1/events/aggregate``."""

    interval: str | None
    group_by: str | None
    buckets: list[AggregateBucket]
