"""Filters as the SDK takes them → query parameters (REST) or a ``filters`` object (stream).

A filter is any canonical field or dotted path (``type``, ``actor.id``), ``since``,
``until``, ``min_severity`` or ``q``, as ``GET /v1/events`` takes them. Values may be a
string, a number, a bool, a ``datetime`` (sent as RFC 3339 UTC) or a list/tuple of those
("any of"). Names with dots cannot be keyword arguments: pass them in ``filters={...}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = ["FilterValue", "Filters", "query_params", "stream_filters"]

Scalar = str | int | float | bool | datetime
FilterValue = Scalar | Sequence[Scalar] | None
Filters = Mapping[str, FilterValue]


def _scalar(value: Scalar) -> str | int | float | bool:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a naive datetime is ambiguous: give it a timezone")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def _text(value: Scalar) -> str:
    v = _scalar(value)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _merge(filters: Filters | None, fields: Filters) -> dict[str, Scalar | Sequence[Scalar]]:
    merged = dict(filters or {})
    merged.update(fields)
    return {k: v for k, v in merged.items() if v is not None}


def query_params(filters: Filters | None, fields: Filters, **reserved: Any
                 ) -> list[tuple[str, str]]:
    """The query string of a REST call: filters (a list joins with commas, the server's
    "any of") and the route's own parameters (``reserved``, skipped when ``None``)."""
    out: list[tuple[str, str]] = []
    for name, value in _merge(filters, fields).items():
        if isinstance(value, str | datetime) or not isinstance(value, Sequence):
            out.append((name, _text(value)))
        else:
            out.append((name, ",".join(_text(v) for v in value)))
    out += [(k, _text(v)) for k, v in reserved.items() if v is not None]
    return out


def stream_filters(filters: Filters | None, fields: Filters) -> dict[str, Any]:
    """The ``filters`` object of a ``subscribe`` message (JSON values; lists kept)."""
    out: dict[str, Any] = {}
    for name, value in _merge(filters, fields).items():
        if isinstance(value, str | datetime) or not isinstance(value, Sequence):
            out[name] = _scalar(value)
        else:
            out[name] = [_scalar(v) for v in value]
    return out
