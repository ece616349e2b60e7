"""A reference's closed set of values for one field, and how canonical values outside it read.

A compat profile may only answer values its reference allows, and every value it answers
must find its record again when used as a filter. A :class:`ValueMap` keeps both promises
for one enum-like field: :meth:`ValueMap.render` turns any canonical value into an allowed
one (or null), and :meth:`ValueMap.filter` selects *exactly* the events that render as the
given values, so a filter on a mapped value neither misses nor adds a record::

    severity = ValueMap("severity", ("low", "medium", "high", "critical"), {"info": "low"})
    severity.render("info")   -> "low"
    severity.filter(["low"])  -> Eq("severity", ("low", "info"))

``other`` is the reference value that every unnamed canonical value (and a missing one)
reads as, where the reference has a catch-all; its filter is the complement of the named
values, so events without the field are selected too. Without ``other`` such values read
as null and no filter selects them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...query.filter import Eq, Node, Not, Or

__all__ = ["ValueMap"]


@dataclass(frozen=True)
class ValueMap:
    #: Canonical path the values live at (``severity``, ``subject.ecosystem`` …).
    path: str
    #: The reference's values, in its documented order.
    allowed: tuple[str, ...]
    #: Canonical values outside ``allowed`` → the allowed value they read as.
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: What any other value, and a missing one, reads as (None: null).
    other: str | None = None

    def __post_init__(self) -> None:
        bad = [v for v in (*self.aliases.values(), self.other) if v is not None
               and v not in self.allowed]
        if bad:
            raise ValueError(f"{self.path}: {bad[0]!r} is not an allowed value")

    def render(self, value: Any) -> str | None:
        """The allowed value a canonical value reads as."""
        if isinstance(value, str):
            if value in self.allowed:
                return value
            if value in self.aliases:
                return self.aliases[value]
        return self.other

    def preimage(self, value: str) -> tuple[str, ...]:
        """The canonical strings that read as ``value`` (the catch-all's are implicit)."""
        return (value, *(k for k, v in self.aliases.items() if v == value))

    def filter(self, values: Iterable[str]) -> Node:
        """Exactly the events whose field renders as one of ``values`` (all allowed)."""
        wanted = set(values)
        named = tuple(v for w in self.allowed if w in wanted and w != self.other
                      for v in self.preimage(w))
        if self.other is None or self.other not in wanted:
            return Eq(self.path, named)
        # The catch-all: everything that none of the other allowed values names.
        rest = tuple(v for w in self.allowed if w != self.other for v in self.preimage(w))
        complement = Not(Eq(self.path, rest))
        return Or((Eq(self.path, named), complement)) if named else complement
