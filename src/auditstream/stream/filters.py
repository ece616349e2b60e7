"""A subscription's ``filters`` object (and ``q``) → the filter tree the REST API builds.

The object holds what ``GET /v1/events`` takes as query parameters, as JSON (a list means
any of), plus the turqoa stream's names for three of them. It goes through the same
``filter_from_params``, so a filter the REST API refuses with 400 is refused here too,
with the same reasons.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest
from ..query.filter import Node, and_, check_size
from ..query.params import filter_from_params
from ..query.predicate import compile_predicate

#: The turqoa stream's filter names → the canonical paths they filter.
ALIASES = {"categories": "category", "zones": "location.zone",
           "source_modules": "source.module"}
#: Filters that are not equality on a path; each takes one string.
SINGLE = frozenset({"since", "until", "q", "min_severity"})


def _raw(name: str, value: Any) -> str:
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, int | float | str) and not (name in SINGLE and len(values) > 1):
            out.append(str(v))
        else:
            raise InvalidRequest("invalid filter", errors=[{"field": name, "reason": (
                "must be a string" if name in SINGLE
                else "must be a string, number, boolean or a list of them")}])
    return ",".join(out)


def filter_from_message(filters: Any, q: Any = None) -> Node:
    """The tree of a ``subscribe``/``update_filters`` message; ``InvalidRequest`` (with
    per-field ``errors``) for anything ``GET /v1/events`` would refuse."""
    if filters is None:
        filters = {}
    if not isinstance(filters, dict):
        raise InvalidRequest("invalid filter", errors=[
            {"field": "filters", "reason": "must be an object"}])
    items = [(ALIASES.get(str(name), str(name)), _raw(str(name), value))
             for name, value in filters.items()]
    if q is not None:
        if not isinstance(q, str):
            raise InvalidRequest("invalid filter", errors=[
                {"field": "q", "reason": "must be a string"}])
        items.append(("q", q))
    where = and_(filter_from_params(items, allowed=frozenset()))
    check_size(where)
    try:
        compile_predicate(where)
    except ValueError as exc:  # what the predicate cannot decide, the stream cannot serve
        raise InvalidRequest("invalid filter", errors=[
            {"field": "filters", "reason": str(exc)}]) from None
    return where


__all__ = ["ALIASES", "filter_from_message"]
