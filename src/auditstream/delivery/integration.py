"""What an integration is (``Integration``, ``Attempt``, ``DeadLetter``) and the checks on
what a caller sends to create or change one (``parse_create``, ``parse_update``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from ..errors import InvalidRequest, QuerySyntaxError
from ..model.text import UNSAFE
from ..model.times import now_us
from ..query.filter import Node, check_size
from ..query.qlang import parse_q
from .guard import DestinationPolicy
from .payload import FORMATS, Format
from .sinks import SINKS, Sink

State = Literal["active", "failing", "paused"]
Action = Literal["deliver", "redeliver", "test"]

#: Longest name and rule.
MAX_NAME = 200
MAX_RULE = 4096


@dataclass(frozen=True)
class Progress:
    """How far an integration's receiver has acknowledged, and what happens next."""

    #: The last seq the receiver acknowledged or that the rule passed over.
    cursor: int = 0
    #: Failed attempts in a row on the events after the cursor.
    failures: int = 0
    #: No attempt before this time (seconds since the epoch), after a failure.
    retry_at: float | None = None
    #: A failed message's last seq: its retries send exactly the same events (so the
    #: same ``webhook-id``). 0: none pending.
    pending_through: int = 0
    #: After a batch was refused: one event per message until the cursor reaches this
    #: seq (the refused batch's last), so that only the event the receiver refuses goes
    #: to the dead letters, not its whole batch. 0: batches.
    single: int = 0
    #: Of ``failures``, the refusals (what counts towards the dead letters: a receiver
    #: that was down for a while and then refuses an event gets as many tries as any).
    refusals: int = 0


@dataclass(frozen=True)
class Integration:
    id: str
    tenant: str
    name: str
    kind: str
    format: Format
    rule: str
    #: As stored, secrets included: never answer it as is (``service.public``).
    config: dict[str, Any]
    enabled: bool = True
    created_at: float = 0.0
    updated_at: float = 0.0
    progress: Progress = field(default_factory=Progress)
    last_attempt_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None

    @property
    def state(self) -> State:
        if not self.enabled:
            return "paused"
        return "failing" if self.progress.failures else "active"

    @property
    def sink(self) -> type[Sink]:
        return SINKS[self.kind]

    def where(self) -> Node:
        """The rule as a filter tree (relative times in it are relative to now)."""
        return parse_q(self.rule, now_us=now_us())


@dataclass(frozen=True)
class Attempt:
    integration_id: str
    at: float
    action: Action
    ok: bool
    #: The events sent: first and last seq, how many (0 for a test message).
    first_seq: int = 0
    last_seq: int = 0
    events: int = 0
    status_code: int | None = None
    latency_ms: float = 0.0
    error: str | None = None
    message_id: str = ""
    response: str = ""


@dataclass(frozen=True)
class DeadLetter:
    integration_id: str
    seq: int
    event_id: str
    attempts: int
    last_error: str
    dead_at: float
    redeliver_requested: bool = False


def new_integration_id() -> str:
    return "int_" + secrets.token_hex(12)


def _bad(field_name: str, reason: str) -> InvalidRequest:
    return InvalidRequest("invalid integration",
                          errors=[{"field": field_name, "reason": reason}])


def _string(doc: dict[str, Any], name: str, *, required: bool, limit: int) -> str | None:
    value = doc.get(name)
    if value is None:
        if required:
            raise _bad(name, "required")
        return None
    if not isinstance(value, str):
        raise _bad(name, "must be a string")
    if len(value) > limit:
        raise _bad(name, f"at most {limit} characters")
    if name == "name" and not value.strip():
        raise _bad(name, "must not be empty")
    if name == "name" and UNSAFE.search(value):
        # A name is shown in the console and the CLI: it must read as it is stored.
        raise _bad(name, "control and bidirectional-override characters are not allowed")
    return value


def check_rule(rule: str) -> None:
    try:
        where = parse_q(rule, now_us=now_us())
    except QuerySyntaxError as exc:
        raise InvalidRequest("invalid integration", errors=[
            {"field": "rule", "reason": str(exc.detail)}]) from None
    check_size(where)


def check_config(kind: str, raw: Any, policy: DestinationPolicy, fmt: Format
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config of ``kind`` as it will be stored, and the values auditstream generated
    for it (a secret), which are in the config too."""
    if not isinstance(raw, dict):
        raise _bad("config", "must be an object")
    sink = SINKS[kind]
    try:
        config = sink.Config.model_validate(raw)
    except ValidationError as exc:
        raise InvalidRequest("invalid integration", errors=[
            {"field": ".".join(["config", *(str(p) for p in e["loc"])]), "reason": e["msg"]}
            for e in exc.errors()]) from None
    generated = sink.prepare(config, policy, fmt)
    return {**config.model_dump(exclude_none=True), **generated}, generated


def _check_format(kind: str, fmt: Any) -> Format:
    if fmt not in FORMATS:
        raise _bad("format", f"one of {', '.join(FORMATS)}")
    if fmt not in SINKS[kind].FORMATS:
        raise _bad("format", f"a {kind} integration carries {', '.join(SINKS[kind].FORMATS)}")
    return fmt  # type: ignore[no-any-return]


CREATE_KEYS = frozenset({"name", "kind", "rule", "format", "config", "enabled",
                         "start_after_seq"})
UPDATE_KEYS = frozenset({"name", "rule", "format", "config", "enabled"})


def _check_keys(doc: Any, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise InvalidRequest("the body must be a JSON object")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise _bad(str(unknown[0])[:100], f"unknown field; accepted: {', '.join(sorted(allowed))}")
    return doc


def parse_create(doc: Any, tenant: str, policy: DestinationPolicy, *, last_seq: int,
                 at: float) -> tuple[Integration, dict[str, Any]]:
    """The integration a ``POST /v1/integrations`` body describes, and the config values
    generated for it (a webhook secret, returned once)."""
    doc = _check_keys(doc, CREATE_KEYS)
    name = _string(doc, "name", required=True, limit=MAX_NAME)
    kind = doc.get("kind")
    if not isinstance(kind, str) or kind not in SINKS:
        raise _bad("kind", f"one of {', '.join(SINKS)}")
    rule = _string(doc, "rule", required=False, limit=MAX_RULE) or ""
    check_rule(rule)
    fmt = _check_format(kind, doc.get("format", "native"))
    enabled = doc.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _bad("enabled", "must be true or false")
    start = doc.get("start_after_seq", last_seq)
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= last_seq:
        raise _bad("start_after_seq", f"an integer from 0 to {last_seq} (the newest seq)")
    config, generated = check_config(kind, doc.get("config", {}), policy, fmt)
    assert name is not None
    return Integration(
        id=new_integration_id(), tenant=tenant, name=name, kind=kind, format=fmt,
        rule=rule, config=config, enabled=enabled, created_at=at, updated_at=at,
        progress=Progress(cursor=start)), generated


def parse_update(doc: Any, current: Integration, policy: DestinationPolicy) -> dict[str, Any]:
    """The changes a ``PATCH`` body asks for. ``config`` is merged key by key into the
    stored one (a PATCH that only moves the URL keeps the secret; ``null`` removes an
    optional key)."""
    doc = _check_keys(doc, UPDATE_KEYS)
    changes: dict[str, Any] = {}
    if "name" in doc:
        changes["name"] = _string(doc, "name", required=True, limit=MAX_NAME)
    if "rule" in doc:
        rule = _string(doc, "rule", required=True, limit=MAX_RULE) or ""
        check_rule(rule)
        changes["rule"] = rule
    if "enabled" in doc:
        if not isinstance(doc["enabled"], bool):
            raise _bad("enabled", "must be true or false")
        changes["enabled"] = doc["enabled"]
    if "format" in doc:
        changes["format"] = _check_format(current.kind, doc["format"])
    if "config" in doc or "format" in doc:  # each is checked with the other
        raw = doc.get("config", {})
        if not isinstance(raw, dict):
            raise _bad("config", "must be an object")
        merged = {k: v for k, v in {**current.config, **raw}.items() if v is not None}
        config = check_config(current.kind, merged, policy,
                              changes.get("format", current.format))[0]
        if "config" in doc:
            changes["config"] = config
    return changes


__all__ = ["Attempt", "DeadLetter", "Integration", "Progress", "parse_create",
           "parse_update"]
