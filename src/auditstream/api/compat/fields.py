"""Tolerant readers of canonical events, shared by the profiles' record renderers.

Producers put anything in the free-form objects; a record field must still come out as
its documented type or null, never as an error.
"""

from __future__ import annotations

from typing import Any


def obj(event: dict[str, Any], name: str) -> dict[str, Any]:
    """The object field ``name`` of an event, or ``{}`` when absent or not an object."""
    value = event.get(name)
    return value if isinstance(value, dict) else {}


def as_str(value: Any) -> str | None:
    """A string field: strings as they are, numbers and booleans spelt out, else null."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def first_str(*values: Any) -> str | None:
    """The first value that reads as a non-empty string (see ``as_str``)."""
    for v in values:
        s = as_str(v)
        if s:
            return s
    return None
