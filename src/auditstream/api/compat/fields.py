"""Tolerant readers of canonical events, shared by the profiles' record renderers, and
their inverses for the profiles' filters.

Producers put anything in the free-form objects; a record field must still come out as
its documented type or null, never as an error. And what a record shows must find that
record again as a filter: ``filter_values`` turns a parameter back into every stored
scalar that ``as_str`` would show as it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ...query.filter import Scalar
from ...query.params import typed_values


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


def as_number(value: Any) -> int | float | None:
    """A number field: finite JSON numbers as they are (not booleans), else null."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def scalars_shown_as(text: str) -> tuple[Scalar, ...]:
    """The stored scalars ``as_str`` shows as ``text``: the text itself and the JSON
    number or boolean it spells (``"42"`` → ``("42", 42)``)."""
    if "," in text:  # no number or boolean is spelt with a comma
        return (text,)
    # Exactly as_str's spelling: "042" is not how 42 is shown, so it does not find 42.
    return _distinct((text, *(v for v in typed_values(text) if as_str(v) == text)))


def filter_values(raw: str) -> tuple[Scalar, ...]:
    """What a list parameter of a free-form field matches: each ``a,b`` item and, as a
    value may itself hold commas or surrounding spaces, the whole parameter too; each
    also as the number or boolean it spells (see ``scalars_shown_as``)."""
    items = [v.strip() for v in raw.split(",") if v.strip()]
    if raw not in items:
        items.append(raw)
    return _distinct(s for item in items for s in scalars_shown_as(item))


def _distinct(values: Iterable[Scalar]) -> tuple[Scalar, ...]:
    # Keyed by type too: True == 1 in Python, but not in JSON.
    return tuple({(type(v), v): v for v in values}.values())
