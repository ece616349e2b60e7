"""The canonical event: what producers send, and the one shape the engine stores.

Validation is Pydantic over a ``TypedDict`` (not a model class) so the validated value is
already the plain ``dict`` the store writes, with no ``model_dump`` on the ingest hot path.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
)
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from .times import TimeParseError, format_us, parse_time

# Already in the engine's own form (what ``format_us`` would print): kept as is.
_CANONICAL_TIME = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{3}(?<!000)|\.\d{6}(?<!000))?Z$")

Severity = Literal["info", "low", "medium", "high", "critical"]
ShortStr = Annotated[StrictStr, Field(min_length=1, max_length=256)]
Text = Annotated[StrictStr, Field(max_length=16_384)]


#: How deep an event may nest: the event is level 1, ``payload`` level 2, ``payload.a``
#: level 3 … Every read path serialises with orjson, which refuses more than 254 levels, so
#: a deeper event would be stored and then break every read; no audit record needs 32.
MAX_DEPTH = 32
#: Largest integer magnitude: RFC 8785 (the hashed form) and I-JSON (RFC 7493) take only
#: integers that an IEEE double holds exactly. orjson reads larger ones as floats up to
#: 2**64, so an event either way would hash, index or read back as another number.
MAX_SAFE_INT = 2**53 - 1


def _object(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise ValueError("Input should be an object")
    problem = _unstorable(value, 2)
    if problem is not None:
        reason, path = problem
        where = ".".join(path)
        raise ValueError(reason + (f" at {where[:200]}" if where else ""))
    return value


def _unstorable(value: dict[str, Any] | list[Any], level: int) -> tuple[str, list[str]] | None:
    """Why a container at ``level`` cannot be stored and read back, with the path to the
    offending value, or ``None``.

    Hot path: a flat loop over type checks. A general walk through Pydantic doubled
    validation time; this one only descends into containers.
    """
    items = value.items() if type(value) is dict else enumerate(value)
    for key, v in items:
        t = type(v)
        if t is str or v is None or t is bool:
            continue
        if t is int:
            if -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
                continue
            reason = (f"integer beyond ±{MAX_SAFE_INT} (2^53 - 1) cannot be stored exactly; "
                      "send it as a string")
        elif t is float:
            if v - v == 0.0:  # finite (inf - inf and NaN - NaN are NaN)
                continue
            reason = "not a finite number (NaN and infinities are not JSON)"
        elif t is dict or t is list:
            if level < MAX_DEPTH:
                problem = _unstorable(v, level + 1)
                if problem is None:
                    continue
                return problem[0], [str(key), *problem[1]]
            reason = f"nested deeper than {MAX_DEPTH} levels"
        else:
            reason = f"not a JSON value: {t.__name__}"
        return reason, [str(key)]
    return None


Obj = Annotated[dict[str, Any], PlainValidator(_object)]


def _normal_time(value: str | int) -> str:
    if type(value) is str and _CANONICAL_TIME.match(value):
        try:
            datetime.fromisoformat(value)  # validates the calendar (no 2026-02-30)
            return value
        except ValueError:
            pass
    try:
        return format_us(parse_time(value))
    except TimeParseError as exc:
        raise ValueError(str(exc)) from None


def _time_type(value: Any) -> Any:
    # One clear error for a float, bool or object, instead of one per member of the union.
    if type(value) is not str and type(value) is not int:
        raise ValueError("expected an RFC 3339 string or integer Unix milliseconds")
    return value


#: Accepts RFC 3339, date-only or Unix ms; yields the engine's RFC 3339 UTC form.
Timestamp = Annotated[StrictStr | StrictInt, BeforeValidator(_time_type),
                      AfterValidator(_normal_time)]

#: Top-level fields whose value is an object of free attributes, addressable by dotted path.
OBJECT_FIELDS: tuple[str, ...] = ("actor", "subject", "source", "location", "context", "llm")
#: Core scalar fields held in their own columns.
CORE_FIELDS: tuple[str, ...] = (
    "id", "tenant", "seq", "timestamp", "received_at", "type", "category",
    "severity", "outcome", "title", "description",
)
#: Every top-level field a stored canonical event may have.
ALL_FIELDS: tuple[str, ...] = CORE_FIELDS + OBJECT_FIELDS + (
    "incident_id", "assigned_to", "requires_action", "tags",
    "metadata", "payload", "error_message", "redacted",
)


class EventIn(TypedDict):
    """One event as a producer sends it; the server fills ``id``, ``seq``, ``received_at``."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    type: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    id: NotRequired[Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_.:\-]{1,128}$")]]
    tenant: NotRequired[ShortStr]
    timestamp: NotRequired[Timestamp]
    category: NotRequired[ShortStr | None]
    severity: NotRequired[Severity | None]
    outcome: NotRequired[ShortStr | None]
    title: NotRequired[Annotated[StrictStr, Field(max_length=1024)] | None]
    description: NotRequired[Text | None]
    actor: NotRequired[Obj | None]
    subject: NotRequired[Obj | None]
    source: NotRequired[Obj | None]
    location: NotRequired[Obj | None]
    context: NotRequired[Obj | None]
    llm: NotRequired[Obj | None]
    incident_id: NotRequired[ShortStr | None]
    assigned_to: NotRequired[ShortStr | None]
    requires_action: NotRequired[StrictBool | None]
    tags: NotRequired[Annotated[list[ShortStr], Field(max_length=64)] | None]
    metadata: NotRequired[Obj | None]
    payload: NotRequired[Obj | None]
    error_message: NotRequired[Text | None]
