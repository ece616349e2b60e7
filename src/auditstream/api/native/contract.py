"""The native API's OpenAPI declarations: one parameter table per route family and the
documents the routes answer.

The tables describe what ``query/params.py`` accepts; ``tests/api/test_openapi.py`` holds
them to its reserved names, and the fuzz test sends what they allow. The answers are
``TypedDict``s because the routes return plain dicts: a key that is not always there is
``NotRequired``, and documents stay open to keys added later.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import WithJsonSchema
from typing_extensions import TypedDict

from ...model.event import OBJECT_FIELDS, EventIn
from ...model.severity import SEVERITIES
from ...settings import Settings
from ..openapi import Param, content, json_schema, ref, request_body

# ------------------------------------------------------------------ documents

DateTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
Scalar = str | int | float | bool | None
Severity = Literal["info", "low", "medium", "high", "critical"]
_OBJECT = {"type": "object", "additionalProperties": True}


class Redaction(TypedDict):
    at: DateTime
    reason: str


class InclusionProof(TypedDict):
    """RFC 9162 inclusion proof of one event in the tenant's log, with the signed
    checkpoint (C2SP signed note) of ``tree_size``."""

    leaf_index: int
    tree_size: int
    leaf_hash: str
    inclusion_path: list[str]
    checkpoint: str


ConsistencyProof = TypedDict("ConsistencyProof", {
    "from": int, "to": int, "from_root": str, "to_root": str, "consistency_path": list[str],
})


class Event(TypedDict):
    """A stored canonical event. Fields the producer left out (or sent as null) are absent;
    a redacted event keeps only its place in the log and its ``redacted`` record."""

    id: str
    tenant: str
    seq: int
    timestamp: DateTime
    received_at: DateTime
    type: str
    category: NotRequired[str]
    severity: NotRequired[Severity]
    outcome: NotRequired[str]
    title: NotRequired[str]
    description: NotRequired[str]
    actor: NotRequired[dict[str, Any]]
    subject: NotRequired[dict[str, Any]]
    source: NotRequired[dict[str, Any]]
    location: NotRequired[dict[str, Any]]
    context: NotRequired[dict[str, Any]]
    llm: NotRequired[dict[str, Any]]
    incident_id: NotRequired[str]
    assigned_to: NotRequired[str]
    requires_action: NotRequired[bool]
    tags: NotRequired[list[str]]
    metadata: NotRequired[dict[str, Any]]
    payload: NotRequired[dict[str, Any]]
    error_message: NotRequired[str]
    redacted: NotRequired[Redaction]
    #: Only with ``?include=proof``.
    proof: NotRequired[InclusionProof]


class EventPage(TypedDict):
    """One page; ``next_cursor`` (null on the last page) fetches the next."""

    data: list[Event]
    next_cursor: str | None
    has_more: bool
    #: Only with ``include_total=true``.
    total: NotRequired[int]


class Appended(TypedDict):
    id: str
    seq: int


class IngestResult(TypedDict):
    """The stored position of every event, in request order."""

    data: list[Appended]
    count: int


class AggregateRow(TypedDict):
    #: Only with ``group_by``: the group's value (null: events without the field).
    key: NotRequired[Scalar]
    count: int
    #: Only with ``count_unique``: distinct values per path.
    uniques: NotRequired[dict[str, int]]
    #: Only with metrics: ``{path: {fn: value}}`` (null when no event had a number there).
    metrics: NotRequired[dict[str, dict[str, float | None]]]


class AggregateBucket(TypedDict):
    #: Only with ``interval``: the bucket's start.
    ts: NotRequired[DateTime]
    rows: list[AggregateRow]


class Aggregate(TypedDict):
    interval: Literal["hour", "day", "week"] | None
    group_by: str | None
    buckets: list[AggregateBucket]


class Latency(TypedDict):
    p50: float | None
    p95: float | None
    p99: float | None


class LlmUsageFigures(TypedDict):
    count: int
    input_tokens: float | None
    output_tokens: float | None
    cost_usd: float | None
    latency_ms: Latency


class LlmUsageRow(LlmUsageFigures):
    key: Scalar


class LlmUsageBucket(TypedDict):
    ts: NotRequired[DateTime]
    rows: list[LlmUsageRow]


class LlmUsage(TypedDict):
    group_by: Literal["model", "provider"]
    interval: Literal["hour", "day", "week", "none"]
    since: DateTime
    until: DateTime | None
    buckets: list[LlmUsageBucket]
    totals: LlmUsageFigures


class StatsSummary(TypedDict):
    """Totals of the period; each map holds the largest groups (``top``), largest first."""

    period: str
    since: DateTime
    until: DateTime
    total_events: int
    outcomes: dict[str, int]
    severities: dict[str, int]
    categories: dict[str, int]
    types: dict[str, int]
    ecosystems: dict[str, int]


class Health(TypedDict):
    status: Literal["ok"]


# ------------------------------------------------------------------ parameters

_TIME = ("RFC 3339 date-time, a date (`2026-06-01`, midnight UTC), Unix milliseconds, "
         "or a duration ago (`30m`, `24h`, `7d`, `2w`)")
_ANY_OF = "comma-separated values match any of them"
INDEXED_PATHS = Settings().indexed_path_list
_PATH_NAME = (r"^(" + "|".join(OBJECT_FIELDS) + r")(\.[A-Za-z_][A-Za-z0-9_\-]{0,63}){1,4}$")


def _list(name: str, description: str, items: dict[str, Any] | None = None) -> Param:
    """An equality filter: one value, or several joined by commas."""
    return Param(name, {"type": "array", "minItems": 1, "items": items or {"type": "string"}},
                 f"{description} ({_ANY_OF}).", extra={"style": "form", "explode": False})


#: The filters of every native read route (``query.params.filter_from_params``).
FILTERS: tuple[Param, ...] = (
    Param("since", {"type": "string"}, f"Events at or after this time: {_TIME}."),
    Param("until", {"type": "string"}, f"Events before this time: {_TIME}."),
    Param("q", {"type": "string"},
          "Query language: `severity:>=high type:user.* actor.id:alice -outcome:allow "
          "\"Nordic Star\" since:24h`; `OR`, parentheses, `field:a,b`, `field:*` (exists), "
          "`field:null`; bare words and quoted phrases search title and description."),
    Param("min_severity", {"type": "string", "enum": list(SEVERITIES)},
          "Events of this severity or above (info < low < medium < high < critical)."),
    _list("type", "Event type"),
    _list("category", "Category"),
    _list("severity", "Severity", {"type": "string", "enum": list(SEVERITIES)}),
    _list("outcome", "Outcome"),
    _list("id", "Event id"),
    _list("incident_id", "Incident id"),
    _list("assigned_to", "Assignee"),
    _list("requires_action", "Operator action needed", {"type": "boolean"}),
    _list("tags", "Events carrying any of these tags"),
    Param("paths", {"type": "object",
                    "propertyNames": {"pattern": _PATH_NAME},
                    "additionalProperties": {"type": "string"}},
          "Any dotted path under actor, subject, source, location, context or llm filters "
          f"by equality too, each its own parameter: `subject.ecosystem=npm,pip`, "
          f"`context.http_status=500` ({_ANY_OF}; numbers and true/false also match JSON "
          "numbers and booleans). Paths indexed by default: "
          f"{', '.join(f'`{p}`' for p in INDEXED_PATHS)}; others filter too, only slower. "
          "Any other name is a 400, so a misspelt filter never widens a query.",
          extra={"style": "form", "explode": True}),
)

_LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}
#: Keyset paging of list routes.
PAGING: tuple[Param, ...] = (
    Param("sort", {"type": "string", "enum": ["timestamp", "severity"], "default": "timestamp"},
          "Sort key; ties are broken by seq."),
    Param("order", {"type": "string", "enum": ["asc", "desc"], "default": "desc"},
          "Sort direction."),
    Param("limit", _LIMIT, "Events per page."),
    Param("cursor", {"type": "string"},
          "The `next_cursor` of the previous page (opaque; bound to the query's sort)."),
    Param("include_total", {"type": "boolean", "default": False},
          "Also count every matching event (`total`); costs a count query."),
)

_PATHS = {"type": "string"}
#: Grouping and metrics of ``/v1/events/aggregate``.
AGGREGATE: tuple[Param, ...] = (
    Param("group_by", _PATHS, "One field or dotted path to group by (not `tags`)."),
    Param("interval", {"type": "string", "enum": ["hour", "day", "week"]},
          "Time buckets (UTC); without it, one bucket."),
    Param("count_unique", _PATHS, "Comma-separated fields or paths to count distinct values of."),
    *(Param(fn, _PATHS, f"Comma-separated numeric paths to compute `{fn}` of per row.")
      for fn in ("sum", "avg", "min", "max", "p50", "p95", "p99")),
)

_SEQ = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
#: Options of ``/v1/events/export``.
EXPORT: tuple[Param, ...] = (
    Param("format", {"type": "string", "enum": ["ndjson", "csv", "parquet"],
                     "default": "ndjson"}, "Encoding of the body."),
    Param("after_seq", {**_SEQ, "default": 0},
          "Only events with a greater seq (resume an export after its last event)."),
    Param("limit", {**_SEQ, "minimum": 1}, "Stop after this many events."),
)

#: ``/v1/llm/events``: short names for the llm paths, and its paging.
LLM_EVENTS: tuple[Param, ...] = (
    _list("provider", "Short for `llm.provider`"),
    _list("model", "Short for `llm.model`"),
    PAGING[1], PAGING[2], PAGING[3],
)

LLM_USAGE: tuple[Param, ...] = (
    Param("group_by", {"type": "string", "enum": ["model", "provider"], "default": "model"},
          "Rows per model or per provider."),
    Param("interval", {"type": "string", "enum": ["hour", "day", "week", "none"],
                       "default": "day"}, "Time buckets; `none` for one bucket."),
    _list("provider", "Short for `llm.provider`"),
    _list("model", "Short for `llm.model`"),
)
_USAGE_SINCE = Param("since", {"type": "string"},
                     f"Calls at or after this time (default: 30 days ago): {_TIME}.")

STATS: tuple[Param, ...] = (
    Param("period", {"type": "string", "pattern": r"^\d+[smhdw]$", "default": "30d"},
          "The period that ends now: a number and a unit s, m, h, d or w."),
    Param("top", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
          "Groups kept per map."),
)

_TREE_SIZE = {"type": "integer", "minimum": 0, "maximum": 2**62}
INCLUSION: tuple[Param, ...] = (
    Param("event_id", {"type": "string"}, "The event to prove.", required=True),
    Param("tree_size", {**_TREE_SIZE, "minimum": 1},
          "Prove against the log at this size (default: the latest)."),
)
CONSISTENCY: tuple[Param, ...] = (
    Param("from", _TREE_SIZE, "The older tree size.", required=True),
    Param("to", _TREE_SIZE, "The newer tree size (default: the latest)."),
)

EVENT_ID = Param("event_id", {"type": "string"}, "The event's id.", location="path")
INCLUDE = Param("include", {"type": "string", "enum": ["proof"]},
                "`proof` adds the event's inclusion proof against the latest checkpoint.")
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key", {"type": "string", "maxLength": 256},
    "Makes a retry of the whole request a no-op for 24 h (the first answer is replayed).",
    location="header")


def with_filters(*params: Param) -> tuple[Param, ...]:
    """``params`` followed by the filters, skipping filters a route declares itself."""
    names = {p.name for p in params}
    return (*params, *(f for f in FILTERS if f.name not in names))


def llm_usage_params() -> tuple[Param, ...]:
    return with_filters(*LLM_USAGE, _USAGE_SINCE)


# ------------------------------------------------------------------ bodies and answers

_LINK = {"Link": {"description": "`<next page URL>; rel=\"next\"` while there are more pages.",
                  "schema": {"type": "string"}}}


def _event_in_schema() -> dict[str, Any]:
    """``EventIn`` as a schema, its free-form fields typed as objects: the validator checks
    only that they are objects, in a plain function whose type Pydantic cannot see."""
    schema = json_schema(EventIn)
    for name in (*OBJECT_FIELDS, "metadata", "payload"):
        schema["properties"][name]["anyOf"][0] = _OBJECT
    return schema


EVENT_IN = ref(_event_in_schema(), "EventIn")
INGEST_BODY = request_body({
    "application/json": {"oneOf": [
        EVENT_IN,
        {"type": "array", "items": EVENT_IN, "minItems": 1, "maxItems": 10_000},
    ]},
    "application/x-ndjson": {"type": "string",
                             "description": "One event object per line."},
}, "One event, a JSON array of events, or NDJSON (one event per line). Atomic: one bad "
   "event rejects the request and every bad item is named.")

REDACT_BODY = request_body({"application/json": {
    "type": "object", "properties": {"reason": {"type": "string", "maxLength": 1000}},
}}, "Why the event is redacted (kept in its record).", required=False)

PAGE = content("application/json", ref(EventPage), "A page of events.", headers=_LINK)
EVENT = content("application/json", ref(Event), "The event.")
INGESTED = content("application/json", ref(IngestResult),
                   "Stored (at least one event is new).")
REPLAYED = content("application/json", ref(IngestResult),
                   "Every event was stored before (a retry); nothing new was written.")
AGGREGATE_ANSWER = content("application/json", ref(Aggregate), "Buckets of rows.")
LLM_USAGE_ANSWER = content("application/json", ref(LlmUsage), "Usage per bucket and totals.")
STATS_ANSWER = content("application/json", ref(StatsSummary), "Totals of the period.")
INCLUSION_ANSWER = content("application/json", ref(InclusionProof), "The proof.")
CONSISTENCY_ANSWER = content("application/json", ref(ConsistencyProof), "The proof.")
SIGNED_NOTE = content("text/plain", {"type": "string"}, "A C2SP signed note.")
VERIFIER_KEY = content("text/plain", {"type": "string"},
                       "The checkpoint verifier key (C2SP vkey), one line.")
HEALTH = content("application/json", ref(Health), "The server is up.")
METRICS = content("text/plain", {"type": "string"}, "Prometheus text exposition format.")
EXPORT_ANSWER = content({
    "application/x-ndjson": {"type": "string", "description": "One event per line."},
    "text/csv": {"type": "string"},
    "application/vnd.apache.parquet": {"type": "string", "format": "binary"},
}, description="The matching events in seq order, streamed.", headers={
    "Auditstream-Last-Seq": {"description": "The tenant's last seq when the export began.",
                             "schema": {"type": "integer"}},
    "Auditstream-Tenant": {"description": "The tenant read.", "schema": {"type": "string"}},
    "Content-Disposition": {"description": "attachment; filename=…",
                            "schema": {"type": "string"}},
})


# ------------------------------------------------------------------ push integrations

IntegrationKind = Literal["webhook", "slack", "splunk_hec", "syslog"]
PayloadFormat = Literal["native", "cloudevents", "vaultterm", "authpi"]


class Integration(TypedDict):
    """A push integration. ``config`` shows secrets as ``********``; ``lag`` counts the
    matching events after ``cursor`` (the last seq the receiver acknowledged or the rule
    passed over)."""

    id: str
    name: str
    kind: IntegrationKind
    format: PayloadFormat
    rule: str
    config: dict[str, Any]
    enabled: bool
    state: Literal["active", "failing", "paused"]
    cursor: int
    lag: int
    failures: int
    next_attempt_at: DateTime | None
    last_attempt_at: DateTime | None
    last_success_at: DateTime | None
    last_error: str | None
    last_error_at: DateTime | None
    dead_letters: int
    created_at: DateTime
    updated_at: DateTime
    #: Only in the answer that created it, when auditstream generated the secret.
    secret: NotRequired[str]


class IntegrationList(TypedDict):
    data: list[Integration]


class DeliveryAttempt(TypedDict):
    at: DateTime
    action: Literal["deliver", "redeliver", "test"]
    ok: bool
    first_seq: int
    last_seq: int
    events: int
    status_code: int | None
    latency_ms: float
    error: str | None
    message_id: str
    response: str


class DeliveryAttemptList(TypedDict):
    data: list[DeliveryAttempt]


class DeadLetter(TypedDict):
    seq: int
    event_id: str
    attempts: int
    last_error: str
    dead_at: DateTime
    redeliver_requested: bool


class DeadLetterPage(TypedDict):
    data: list[DeadLetter]
    #: Pass as ``after_seq`` for the next page; null on the last.
    next_after_seq: int | None


class Redelivery(TypedDict):
    requested: int


INTEGRATION_ID = Param("integration_id", {"type": "string"}, "The integration's id.",
                       location="path")
_INTEGRATION_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "rule": {"type": "string", "maxLength": 4096,
             "description": "A `q` filter: the events delivered (empty: all)."},
    "format": {"type": "string", "enum": ["native", "cloudevents", "vaultterm", "authpi"]},
    "config": {"type": "object", "additionalProperties": True, "description": (
        "By kind. webhook: `url`, `secret` (whsec_…; generated when left out and "
        "returned once), `batch_size`, `headers`. slack: `url`, `batch_size`. splunk_hec: "
        "`url`, `token`, `index`, `source`, `sourcetype`, `host`, `batch_size`. syslog: "
        "`host`, `port`, `transport` (udp, tcp, tls), `body` (json, cef), `facility`, "
        "`app_name`, `tls_ca`, `tls_verify`, `batch_size`.")},
    "enabled": {"type": "boolean"},
}
INTEGRATION_CREATE = request_body({"application/json": {
    "type": "object", "required": ["name", "kind"], "additionalProperties": False,
    "properties": {
        **_INTEGRATION_FIELDS,
        "kind": {"type": "string", "enum": ["webhook", "slack", "splunk_hec", "syslog"]},
        "start_after_seq": {"type": "integer", "minimum": 0, "description": (
            "Deliver the events after this seq (default: the newest, so only new events; "
            "0: the whole log).")},
    }}}, "The integration to create.")
INTEGRATION_UPDATE = request_body({"application/json": {
    "type": "object", "additionalProperties": False, "properties": _INTEGRATION_FIELDS,
}}, "The fields to change; `config` is merged key by key (null removes a key).")
REDELIVER_BODY = request_body({"application/json": {
    "type": "object", "additionalProperties": False, "properties": {
        "seqs": {"type": "array", "maxItems": 1000,
                 "items": {"type": "integer", "minimum": 1}}},
}}, "The dead letters to redeliver, by seq (no body: all of them).", required=False)
ATTEMPT_LIMIT = Param("limit", {"type": "integer", "minimum": 1, "maximum": 200,
                                "default": 50}, "Attempts returned, newest first.")
LETTER_PARAMS = (
    Param("after_seq", _SEQ, "Dead letters after this seq (the previous page's "
          "`next_after_seq`)."),
    Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
          "Dead letters per page."),
)
INTEGRATION = content("application/json", ref(Integration), "The integration.")
INTEGRATION_LIST = content("application/json", ref(IntegrationList),
                           "The tenant's integrations, oldest first.")
ATTEMPT = content("application/json", ref(DeliveryAttempt), "What the receiver answered.")
ATTEMPT_LIST = content("application/json", ref(DeliveryAttemptList),
                       "Recent attempts, newest first.")
DEAD_LETTERS = content("application/json", ref(DeadLetterPage), "Dead letters in seq order.")
REDELIVERY = content("application/json", ref(Redelivery),
                     "How many dead letters were marked; they are sent in seq order.")
