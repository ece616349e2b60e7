"""The record each payload format carries for one canonical event.

* ``native``: the canonical event itself, with its ``seq``;
* ``vaultterm``: exactly the VaultTerm profile's flat record ("the same field names as
  the push connectors": a record looks the same pushed or pulled);
* ``authpi``: exactly the authpi profile's record;
* ``cloudevents``: a CloudEvents 1.0 envelope (structured mode) whose ``data`` is the
  canonical event; ``id`` is the event id, ``source`` names the deployment and tenant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import orjson

from ..api.compat.authpi import to_record as authpi_record
from ..api.compat.vaultterm import event_record as vaultterm_record

Format = Literal["native", "cloudevents", "vaultterm", "authpi"]
FORMATS: tuple[Format, ...] = ("native", "cloudevents", "vaultterm", "authpi")

#: The CloudEvents ``type`` of every event is this prefix and the event's own type.
CLOUDEVENTS_TYPE_PREFIX = "io.auditstream."


def cloudevent(event: dict[str, Any], deployment: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event["id"],
        "source": f"//{deployment}/tenants/{event.get('tenant', '')}",
        "type": CLOUDEVENTS_TYPE_PREFIX + str(event["type"]),
        "time": event["timestamp"],
        "datacontenttype": "application/json",
        "subject": str(event.get("seq", "")),
        "data": event,
    }


def formatter(fmt: Format, deployment: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The function from a canonical event to the record of ``fmt``."""
    if fmt == "vaultterm":
        return vaultterm_record
    if fmt == "authpi":
        return authpi_record
    if fmt == "cloudevents":
        return lambda event: cloudevent(event, deployment)
    return lambda event: event


def text_of(value: Any) -> str:
    """A field as text for a message: "" for none, JSON for what is not a string."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def object_of(event: dict[str, Any], name: str) -> dict[str, Any]:
    """An object field of the event, or {} (absent, null, or redacted away)."""
    value = event.get(name)
    return value if isinstance(value, dict) else {}


__all__ = ["CLOUDEVENTS_TYPE_PREFIX", "FORMATS", "Format", "cloudevent", "formatter",
           "object_of", "text_of"]
