"""The documented answers and errors of the compat profiles, as OpenAPI component schemas.

Each profile's module renders its records (``turen.event_record`` …); these ``TypedDict``s
describe what those renderers return, in the types of the profile's reference, and the
fuzz test holds the renderers to them.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from pydantic import WithJsonSchema
from typing_extensions import TypedDict

_Str = str | None


# ------------------------------------------------------------------ turen


class TurenErrorBody(TypedDict):
    code: str
    message: str


class TurenError(TypedDict):
    """turen's errors: ``code`` is invalid_parameter, unauthorized, forbidden, not_found …"""

    error: TurenErrorBody


class TurenPagination(TypedDict):
    limit: int
    offset: int
    total: int
    has_more: bool


class TurenActor(TypedDict):
    command: _Str
    args: list[str]
    version: _Str


class TurenSubject(TypedDict):
    ecosystem: _Str
    package: _Str
    version: _Str


class TurenEvent(TypedDict):
    id: str
    client_id: _Str
    timestamp: str
    type: str
    outcome: _Str
    actor: TurenActor
    subject: TurenSubject
    metadata: dict[str, Any]
    payload: dict[str, Any]


class TurenEventPage(TypedDict):
    """Events newest first, offset pages."""

    events: list[TurenEvent]
    pagination: TurenPagination


class TurenLlmEvent(TypedDict):
    id: str
    timestamp: str
    client_id: _Str
    provider: _Str
    model: _Str
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float | None
    cost_usd: float | None


class TurenLlmPage(TypedDict):
    events: list[TurenLlmEvent]
    pagination: TurenPagination


class TurenSummary(TypedDict):
    total_events: int
    outcomes: dict[str, int]
    ecosystems: dict[str, int]
    period: str


# ------------------------------------------------------------------ turqoa


class TurqoaError(TypedDict):
    """``type`` is always ``error``; ``code`` e.g. invalid_filter, invalid_parameter."""

    type: str
    code: str
    message: str


class TurqoaLocation(TypedDict):
    lat: float | None
    lng: float | None
    zone: _Str


class TurqoaEvent(TypedDict):
    id: str
    timestamp: str
    category: _Str
    severity: _Str
    source_module: _Str
    source_device: _Str
    title: _Str
    description: _Str
    location: TurqoaLocation
    metadata: dict[str, Any]
    requires_action: bool
    assigned_to: _Str
    incident_id: _Str


class TurqoaMeta(TypedDict):
    request_id: str
    timestamp: str


class TurqoaPagination(TypedDict):
    page: int
    per_page: int
    total_items: int
    total_pages: int
    has_next: bool
    has_previous: bool


class TurqoaEventPage(TypedDict):
    """One page of events (page/per_page)."""

    data: list[TurqoaEvent]
    meta: TurqoaMeta
    pagination: TurqoaPagination


# ------------------------------------------------------------------ VaultTerm


class VaultTermError(TypedDict):
    """``error`` is a code: invalid_request, unauthorized, forbidden …"""

    error: str
    message: str


class VaultTermEvent(TypedDict):
    id: str
    action: str
    title: _Str
    category: _Str
    severity: _Str
    actor: _Str
    resource: _Str
    source_ip: _Str
    detail: _Str
    timestamp: str


class VaultTermPage(TypedDict):
    """Oldest first; ``next_cursor`` is null on the last page."""

    data: list[VaultTermEvent]
    next_cursor: _Str


# ------------------------------------------------------------------ platform-audit


class AuditEventResponse(TypedDict):
    id: str
    created_at: Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
    user_id: int | None
    actor_type: str
    actor_id: _Str
    source: str
    event_group: str
    event_type: str
    status: str
    resource_type: _Str
    resource_id: _Str
    session_id: _Str
    vm_id: _Str
    task_id: int | None
    request_id: _Str
    correlation_id: _Str
    http_method: _Str
    path: _Str
    http_status: int | None
    latency_ms: float | None
    ip_address: _Str
    user_agent: _Str
    node_ip: _Str
    worker_id: _Str
    event_payload: dict[str, Any] | None
    error_message: _Str


class AuditEventList(TypedDict):
    """Newest first; ``next_cursor`` is null on the last page."""

    items: list[AuditEventResponse]
    next_cursor: _Str


class Token(TypedDict):
    access_token: str
    token_type: str


class HTTPError(TypedDict):
    """FastAPI's ``HTTPException`` body."""

    detail: str


# ------------------------------------------------------------------ authpi


class ApiErrorBody(TypedDict):
    type: str
    code: int
    message: str
    param: NotRequired[str]


class ApiError(TypedDict):
    """authpi's ``ApiError``: ``param`` names the parameter at fault, if one is."""

    error: ApiErrorBody


class AuthpiActor(TypedDict):
    type: _Str
    id: _Str
    name: _Str


class AuthpiResource(TypedDict):
    type: _Str
    id: _Str


class AuthpiRequest(TypedDict):
    id: _Str
    method: _Str
    path: _Str
    status: int | None
    duration_ms: float | None


class AuthpiEvent(TypedDict):
    """An event; ``timestamp`` in Unix milliseconds, every key present (null: unknown)."""

    id: str
    type: str
    timestamp: int
    account_id: str
    user_id: _Str
    client_id: _Str
    issuer_id: _Str
    org_id: _Str
    agent_id: _Str
    auth_type: _Str
    ip_address: _Str
    user_agent: _Str
    outcome: _Str
    actor: AuthpiActor | None
    resource: AuthpiResource | None
    request: AuthpiRequest | None
    error_message: _Str
    data: dict[str, Any] | None
    metadata: dict[str, Any] | None


class AuthpiEventList(TypedDict):
    data: list[AuthpiEvent]
    next_cursor: _Str
    has_more: bool


class AuthpiAggregateRow(TypedDict):
    key: NotRequired[_Str]
    count: int
    uniques: NotRequired[dict[str, int]]


class AuthpiBucket(TypedDict):
    ts: NotRequired[int]
    rows: list[AuthpiAggregateRow]


class AuthpiAggregate(TypedDict):
    interval: _Str
    group_by: _Str
    buckets: list[AuthpiBucket]
