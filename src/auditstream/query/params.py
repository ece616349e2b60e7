"""Query-string parameters of the native API → filter tree.

Reserved names shape the answer (limit, cursor, sort …); every other name must be a
canonical field or a dotted path and filters by equality, a comma meaning "any of".
An unknown name is an error, not silently ignored: a typo must not widen a query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import InvalidRequest, ValidationFailed
from ..model.severity import RANK, SEVERITIES
from ..model.times import TimeParseError, now_us, parse_time
from .filter import TOP_LEVEL, Cmp, Eq, Node, Scalar, and_, is_valid_path
from .qlang import parse_q

#: Parameters that are not equality filters, per route family.
PAGE_PARAMS = frozenset({"limit", "cursor", "sort", "order", "include_total"})
FILTER_PARAMS = frozenset({"since", "until", "q", "min_severity"})
AGGREGATE_PARAMS = frozenset({
    "group_by", "interval", "count_unique", "sum", "avg", "min", "max", "p50", "p95", "p99",
})
NOT_FILTERABLE = frozenset({"timestamp", "received_at", "title", "description"})


def metric_path_error(path: str) -> str | None:
    """Why ``path`` cannot be a metric (``sum``, ``avg``, ``p95`` …), or ``None`` if it can.

    Top-level fields hold names, text, times or ``seq``, never a measurement (a sum of
    timestamps overflows, one of titles is meaningless): metrics take a dotted path under an
    object field, where producers put numbers (``llm.cost_usd``, ``context.latency_ms``).
    """
    if not is_valid_path(path) or path in TOP_LEVEL:
        return (f"{path[:80]!r} is not numeric: use a dotted path under actor, subject, "
                "source, location, context or llm (e.g. llm.cost_usd)")
    return None


def typed_values(raw: str) -> tuple[Scalar, ...]:
    """``a,b`` → ("a", "b"); numeric and boolean words also match their JSON types."""
    out: list[Scalar] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        out.append(part)
        if part in ("true", "false"):
            out.append(part == "true")
            continue
        try:
            n = int(part)
            if -(2**63) <= n < 2**63:  # beyond that no store can hold it as an integer
                out.append(n)
            continue
        except ValueError:
            try:
                f = float(part)
                if f == f and f not in (float("inf"), float("-inf")):
                    out.append(f)
            except ValueError:
                pass
    return tuple(out)


def time_bound(name: str, raw: str, now: int) -> int:
    try:
        return parse_time(raw, now=now, allow_relative=True)
    except TimeParseError as exc:
        raise ValidationFailed(f"invalid {name}", errors=[{"field": name, "reason": str(exc)}]
                               ) from None


def filter_from_params(
    items: Iterable[tuple[str, str]], *, allowed: frozenset[str] = PAGE_PARAMS,
    now: int | None = None,
) -> Node:
    """Build the filter from query parameters; raise on unknown names or bad values."""
    now = now_us() if now is None else now
    nodes: list[Node] = []
    errors = []
    for name, raw in items:
        if name in allowed:
            continue
        if name == "since":
            nodes.append(Cmp("timestamp", ">=", time_bound(name, raw, now)))
        elif name == "until":
            nodes.append(Cmp("timestamp", "<", time_bound(name, raw, now)))
        elif name == "q":
            nodes.append(parse_q(raw, now_us=now))
        elif name == "min_severity":
            if raw not in RANK:
                errors.append({"field": name,
                               "reason": f"must be one of {', '.join(SEVERITIES)}"})
                continue
            nodes.append(Cmp("severity", ">=", raw))
        elif not is_valid_path(name) or name in NOT_FILTERABLE:
            errors.append({"field": name, "reason": "unknown filter: use a canonical field "
                           "or a dotted path under actor, subject, source, location, context, llm"})
        else:
            values = typed_values(raw)
            if not values:
                errors.append({"field": name, "reason": "empty filter value"})
                continue
            if name == "severity":
                bad = [v for v in values if v not in RANK]
                if bad:
                    errors.append({"field": name, "reason": f"unknown severity {bad[0]!r}; "
                                   f"valid: {', '.join(SEVERITIES)}"})
                    continue
            nodes.append(Eq(name, values))
    if errors:
        raise InvalidRequest("invalid query parameters", errors=errors)
    return and_(*nodes)


_INTEGER = re.compile(r"-?[0-9]{1,30}")


def int_param(name: str, raw: str | None, default: int, lo: int, hi: int) -> int:
    if raw is None:
        return default
    # ASCII digits only: int() also reads "٣", " 7 " and "1_000", which no client means.
    if not _INTEGER.fullmatch(raw):
        raise ValidationFailed(f"{name} must be an integer", errors=[
            {"field": name, "reason": f"not an integer: {raw!r}"}])
    value = int(raw)
    if not lo <= value <= hi:
        raise ValidationFailed(f"{name} out of range", errors=[
            {"field": name, "reason": f"must be between {lo} and {hi}"}])
    return value


def choice_param(name: str, raw: str | None, default: str, choices: tuple[str, ...]) -> str:
    if raw is None:
        return default
    if raw not in choices:
        raise ValidationFailed(f"invalid {name}", errors=[
            {"field": name, "reason": f"must be one of {', '.join(choices)}"}])
    return raw
