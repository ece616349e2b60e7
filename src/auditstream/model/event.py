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


def _object(value: Any) -> dict[str, Any]:
    # Only "is it an object": the body came from a JSON parser, so its contents are JSON
    # values already, and walking every nested value again doubled validation time.
    if type(value) is not dict:
        raise ValueError("Input should be an object")
    return value


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


#: Accepts RFC 3339, date-only or Unix ms; yields the engine's RFC 3339 UTC form.
Timestamp = Annotated[StrictStr | StrictInt, AfterValidator(_normal_time)]

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
