"""Turn a request body into canonical events and append them atomically.

Everything that can be wrong with a request is found before anything is written: the
whole batch is validated, every bad item is reported with its index, field and reason,
and only a fully valid batch reaches ``EventStore.append`` (which is itself atomic).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

import orjson
from pydantic import TypeAdapter, ValidationError

from ..errors import (
    InvalidRequest,
    PayloadTooLarge,
    PermissionDenied,
    UnsupportedMediaType,
    ValidationFailed,
)
from ..integrity.redaction import RESERVED_TYPE_PREFIX
from ..model.catalog import type_defaults
from ..model.event import EventIn
from ..model.ids import new_event_id
from ..model.times import format_us, now_us
from ..store.base import Appended, EventStore

_ONE = TypeAdapter(EventIn)
_MANY = TypeAdapter(list[EventIn])

#: OpenTelemetry GenAI attribute names accepted inside ``llm`` and their canonical names.
OTEL_GENAI = {
    "gen_ai.system": "provider",
    "gen_ai.provider.name": "provider",
    "gen_ai.request.model": "model",
    "gen_ai.response.model": "response_model",
    "gen_ai.usage.input_tokens": "input_tokens",
    "gen_ai.usage.output_tokens": "output_tokens",
    "gen_ai.operation.name": "operation",
}


def otel_to_canonical(llm: dict[str, Any]) -> dict[str, Any]:
    """Rename OpenTelemetry GenAI attributes; a canonical name the producer also sent wins,
    and ``gen_ai.provider.name`` wins over the older ``gen_ai.system``."""
    out = {OTEL_GENAI[k]: llm[k] for k in OTEL_GENAI if k in llm}  # dict order: system first
    out.update((k, v) for k, v in llm.items() if k not in OTEL_GENAI)
    return out


def _pydantic_errors(exc: ValidationError, batch: bool) -> list[dict[str, Any]]:
    out = []
    for e in exc.errors(include_url=False):
        loc = list(e["loc"])
        item: dict[str, Any] = {}
        if batch and loc and isinstance(loc[0], int):
            item["index"] = loc.pop(0)
        if e["type"] == "extra_forbidden":
            reason = "unknown field (see the canonical event in the docs)"
        else:
            reason = e["msg"]
        item["field"] = ".".join(str(p) for p in loc) or "(event)"
        item["reason"] = reason
        out.append(item)
    return out


#: NDJSON media types (one event per line).
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")
#: What a 415 names as accepted.
ACCEPTED_TYPES = ("application/json", "application/*+json", *NDJSON_TYPES)


def body_format(content_type: str) -> Literal["json", "ndjson"]:
    """``"json"`` or ``"ndjson"`` for a request's Content-Type, else ``UnsupportedMediaType``.

    A missing (empty) Content-Type is read as JSON, for clients that send none. Anything
    that is not JSON is refused rather than parsed as JSON: ``text/plain``, form and
    multipart bodies are what a cross-site HTML form can send with a browser's cookies,
    and a JSON API that reads them can be driven by any page its users visit.
    """
    ctype = content_type.split(";")[0].strip().lower()
    if ctype in NDJSON_TYPES:
        return "ndjson"
    if not ctype or ctype == "application/json" or (
        ctype.startswith("application/") and ctype.endswith("+json")
    ):
        return "json"
    raise UnsupportedMediaType(
        f"Content-Type {ctype[:100]!r} is not accepted: send application/json (one event or "
        "an array), application/*+json, or NDJSON as application/x-ndjson (also "
        "application/ndjson, application/jsonl)", accept=list(ACCEPTED_TYPES))


def parse_body(body: bytes, content_type: str, max_events: int) -> list[dict[str, Any]]:
    """Parse one object, a JSON array, or NDJSON into validated (not yet normalised) events.

    All three forms go through the same parser (orjson: no NaN, no infinities, at most
    1024 levels) and the same ``EventIn`` validation (``model.event``: at most
    ``MAX_DEPTH`` levels, finite numbers, safe integers), so each refuses exactly what the
    others refuse.
    """
    form = body_format(content_type)
    text = body.strip()
    if not text:
        raise InvalidRequest("request body is empty; send an event, an array or NDJSON")
    raw: Any
    if form == "ndjson":
        lines = [ln for ln in text.split(b"\n") if ln.strip()]
        if len(lines) > max_events:
            raise PayloadTooLarge(f"{len(lines)} events in one request; the limit is {max_events}")
        raw = []
        for i, ln in enumerate(lines):
            try:
                raw.append(orjson.loads(ln))
            except orjson.JSONDecodeError as exc:
                raise ValidationFailed("malformed NDJSON", errors=[
                    {"index": i, "field": "(line)", "reason": f"invalid JSON: {exc}"}]) from None
    else:
        try:
            raw = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"body is not valid JSON: {exc}", errors=[
                {"field": "(body)", "reason": str(exc)}]) from None
    batch = isinstance(raw, list)
    if batch:
        # Count before validating so an oversized batch costs nothing to reject.
        if len(raw) > max_events:
            raise PayloadTooLarge(f"{len(raw)} events in one request; the limit is {max_events}")
        if not raw:
            raise InvalidRequest("the batch is empty")
    try:
        if batch:
            return [dict(e) for e in _MANY.validate_python(raw)]
        return [dict(_ONE.validate_python(raw))]
    except ValidationError as exc:
        raise ValidationFailed("some events are invalid; nothing was stored",
                               errors=_pydantic_errors(exc, batch)) from None


def normalise(
    events: list[dict[str, Any]], *, tenant: str, received_us: int
) -> tuple[list[dict[str, Any]], frozenset[int]]:
    """Fill server fields and defaults; returns (events, positions of client-chosen ids)."""
    received = format_us(received_us)
    defaults = type_defaults()
    client_ids = []
    out = []
    for i, raw in enumerate(events):
        if "id" in raw:
            client_ids.append(i)
        # Canonical key order, so stored and returned events read the same way every time.
        ev: dict[str, Any] = {
            "id": raw.get("id") or new_event_id(),
            "tenant": tenant,
            "timestamp": raw.get("timestamp") or received,
            "received_at": received,
            "type": raw["type"],
        }
        for k, v in raw.items():
            if v is not None and k not in ev and k != "tenant":
                ev[k] = v
        if "severity" not in ev or "category" not in ev:
            cat, sev = defaults.get(ev["type"], (None, None))
            ev.setdefault("severity", sev or "info")
            if cat is not None:
                ev.setdefault("category", cat)
        llm = ev.get("llm")
        if llm and any(k in OTEL_GENAI for k in llm):
            ev["llm"] = otel_to_canonical(llm)
        out.append(ev)
    return out, frozenset(client_ids)


def check_tenant_and_types(events: list[dict[str, Any]], tenant: str) -> None:
    """Events go to the credential's tenant, whatever its scopes (an admin of one tenant
    never writes into another); a ``tenant`` in the body may only repeat it. Types under
    ``auditstream.`` are the server's own log entries (redaction records)."""
    errors = []
    for i, ev in enumerate(events):
        named = ev.get("tenant")
        if named is not None and named != tenant:
            errors.append({"index": i, "field": "tenant",
                           "reason": f"this credential writes to tenant {tenant!r} only"})
        if ev["type"].startswith(RESERVED_TYPE_PREFIX):
            errors.append({"index": i, "field": "type", "reason": "types starting with "
                           f"{RESERVED_TYPE_PREFIX!r} are written by the server only"})
    if any(e["field"] == "tenant" for e in errors):
        raise PermissionDenied("events are written to the credential's own tenant",
                               errors=errors)
    if errors:
        raise ValidationFailed("some events are invalid; nothing was stored", errors=errors)


_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,254}")


class Ingestor:
    """Validates requests and appends them; the one way events enter the store."""

    def __init__(self, store: EventStore, *, max_events: int, max_bytes: int):
        self.store = store
        self.max_events = max_events
        self.max_bytes = max_bytes

    async def ingest(
        self,
        tenant: str,
        body: bytes,
        content_type: str,
        *,
        idempotency_key: str | None = None,
    ) -> list[Appended]:
        if len(body) > self.max_bytes:
            raise PayloadTooLarge(f"body of {len(body)} bytes; the limit is {self.max_bytes}")
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise InvalidRequest("invalid Idempotency-Key", errors=[
                {"field": "Idempotency-Key", "reason": "1 to 255 printable ASCII characters"}])
        raw = parse_body(body, content_type, self.max_events)
        check_tenant_and_types(raw, tenant)
        events, client_ids = normalise(raw, tenant=tenant, received_us=now_us())
        request_hash = (hashlib.sha256(body).hexdigest() if idempotency_key is not None
                        else None)
        return await self.store.append(
            tenant, events, client_ids=client_ids,
            idempotency_key=idempotency_key, request_hash=request_hash,
        )
