"""Opaque keyset cursors: base64url of a small JSON document.

A cursor holds the sort it was made for and the sort key of the last event returned
(``seq`` breaks ties, so it never depends on storage row numbers shared across tenants).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import InvalidRequest


@dataclass(frozen=True)
class Cursor:
    sort: str
    order: str
    key: tuple[Any, ...]


def encode(c: Cursor) -> str:
    raw = orjson.dumps({"s": c.sort, "o": c.order, "k": list(c.key)})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(text: str, *, sort: str, order: str) -> Cursor:
    """Decode and check that a cursor belongs to this sort and order."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        doc = orjson.loads(raw)
        c = Cursor(str(doc["s"]), str(doc["o"]), tuple(doc["k"]))
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in c.key):
            raise ValueError
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise InvalidRequest("cursor is not valid", errors=[
            {"field": "cursor", "reason": "not a cursor returned by this API"}
        ]) from None
    if c.sort != sort or c.order != order:
        raise InvalidRequest("cursor was made for a different sort or order", errors=[
            {"field": "cursor", "reason": f"made for sort={c.sort}&order={c.order}"}
        ])
    return c
