"""Opaque keyset cursors: base64url of a small JSON document.

A cursor holds the sort it was made for, the sort key of the last event returned (``seq``
breaks ties, so it never depends on storage row numbers shared across tenants) and a tag
of the tenant it was made for: another tenant's cursor is refused, not reinterpreted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import InvalidRequest


@dataclass(frozen=True)
class Cursor:
    sort: str
    order: str
    key: tuple[Any, ...]


#: Sort keys are SQLite integers (seq, microseconds, severity rank).
_INT64 = range(-(2**63), 2**63)
#: Longest cursor text accepted; real ones are well under 200 characters.
MAX_LENGTH = 512


def _tenant_tag(tenant: str) -> str:
    return hashlib.sha256(tenant.encode()).hexdigest()[:12]


def encode(c: Cursor, *, tenant: str) -> str:
    raw = orjson.dumps({"s": c.sort, "o": c.order, "k": list(c.key), "t": _tenant_tag(tenant)})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(text: str, *, sort: str, order: str, tenant: str) -> Cursor:
    """Decode and check that a cursor belongs to this tenant, sort and order."""
    try:
        if len(text) > MAX_LENGTH:
            raise ValueError
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        doc = orjson.loads(raw)
        c = Cursor(str(doc["s"]), str(doc["o"]), tuple(doc["k"]))
        if not all(type(k) is int and k in _INT64 for k in c.key):
            raise ValueError
        tag = doc.get("t")
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise InvalidRequest("cursor is not valid", errors=[
            {"field": "cursor", "reason": "not a cursor returned by this API"}
        ]) from None
    if tag != _tenant_tag(tenant):
        raise InvalidRequest("cursor was made for another tenant", errors=[
            {"field": "cursor", "reason": "not a cursor returned to this credential"}])
    if c.sort != sort or c.order != order:
        raise InvalidRequest("cursor was made for a different sort or order", errors=[
            {"field": "cursor", "reason": f"made for sort={c.sort}&order={c.order}"}
        ])
    return c
