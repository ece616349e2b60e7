"""The filter tree.

Every way a person or program selects events (query parameters, the ``q`` language,
compat profiles, stream subscriptions, push rules, exports) builds one of these trees.
Two compilers read it: ``store.sqlite.sql`` to SQL, ``query.predicate`` to a Python
predicate over a canonical event dict. Both must select the same events.

A *path* is a top-level canonical field (``type``, ``severity``, ``timestamp``, ``tags``)
or a dotted path into an object field (``subject.ecosystem``, ``context.http_status``).
``timestamp`` values are integers of microseconds since the epoch; ``severity`` values
are severity names and compare by rank.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..errors import InvalidRequest
from ..model.event import OBJECT_FIELDS

Scalar = str | int | float | bool | None
CmpOp = Literal[">", ">=", "<", "<="]

#: Top-level fields a filter may name directly.
TOP_LEVEL = frozenset({
    "id", "type", "category", "severity", "outcome", "title", "description", "timestamp",
    "received_at", "seq", "incident_id", "assigned_to", "requires_action", "tags",
    "error_message",
})
_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")


def is_valid_path(path: str) -> bool:
    """True for a top-level field or ``object.attr[.attr…]`` under an object field."""
    if path in TOP_LEVEL:
        return True
    head, _, rest = path.partition(".")
    if head not in OBJECT_FIELDS or not rest:
        return False
    return all(_SEGMENT.match(seg) for seg in rest.split(".")) and rest.count(".") < 4


class Node:
    """Base of every filter node (immutable, hashable)."""


@dataclass(frozen=True)
class All(Node):
    """Matches every event."""


@dataclass(frozen=True)
class Eq(Node):
    """``path`` equals any of ``values`` (for ``tags``: contains any of them)."""

    path: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Cmp(Node):
    """Ordered comparison; severity compares by rank, timestamp in microseconds."""

    path: str
    op: CmpOp
    value: Scalar


@dataclass(frozen=True)
class Prefix(Node):
    """``path`` is a string starting with ``prefix`` (``type:user.*``)."""

    path: str
    prefix: str


@dataclass(frozen=True)
class Exists(Node):
    """``path`` is present and not null."""

    path: str


@dataclass(frozen=True)
class Text(Node):
    """Full-text match over title and description: all ``terms`` (words or phrases)."""

    terms: tuple[str, ...]


@dataclass(frozen=True)
class And(Node):
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or(Node):
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not(Node):
    child: Node


def and_(*nodes: Node | None) -> Node:
    """Conjunction that drops ``None``/``All`` and flattens nested ``And``."""
    flat: list[Node] = []
    for n in nodes:
        if n is None or isinstance(n, All):
            continue
        if isinstance(n, And):
            flat.extend(n.children)
        else:
            flat.append(n)
    if not flat:
        return All()
    if len(flat) == 1:
        return flat[0]
    return And(tuple(flat))


#: Bounds on any filter tree, whoever built it (query parameters, ``q``, a compat profile):
#: its SQL must stay far inside SQLite's expression depth (1,000) and bound-variable
#: (32,766) limits, and compiling it far inside Python's recursion limit. ``q`` has tighter
#: limits of its own (``qlang``), reported with a position.
#: Integer comparisons on ``timestamp``/``received_at`` (µs) and ``seq`` are clamped to
#: this magnitude before they reach a store: no stored value comes near it (years 1–9999
#: are below 2.6e17 µs), and every bound beyond it means the same as the bound itself,
#: while the arithmetic stores do on it (hour buckets) stays within 64 bits.
INT_BOUND = 2**62


def clamp_int(value: int) -> int:
    return max(-INT_BOUND, min(INT_BOUND, value))


MAX_CONDITIONS = 512  # leaves: Eq, Cmp, Prefix, Exists, each Text term
MAX_VALUES = 4096  # values of all Eq leaves together
MAX_DEPTH = 64  # nested And / Or / Not


def check_size(node: Node) -> None:
    """Raise ``InvalidRequest`` when ``node`` is beyond the bounds above."""
    conditions = values = 0
    stack: list[tuple[Node, int]] = [(node, 1)]
    while stack:
        n, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_large(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(n, And | Or):
            stack.extend((c, depth + 1) for c in n.children)
        elif isinstance(n, Not):
            stack.append((n.child, depth + 1))
        elif isinstance(n, Text):
            conditions += len(n.terms)
        elif not isinstance(n, All):
            conditions += 1
            if isinstance(n, Eq):
                values += len(n.values)
    if conditions > MAX_CONDITIONS:
        raise _too_large(f"{conditions} conditions; at most {MAX_CONDITIONS}")
    if values > MAX_VALUES:
        raise _too_large(f"{values} filter values; at most {MAX_VALUES}")


def _too_large(reason: str) -> InvalidRequest:
    return InvalidRequest("the filter is too large; narrow it", errors=[
        {"field": "(filter)", "reason": reason}])
