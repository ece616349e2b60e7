"""JSON request bodies of the small native routes (sign-in, keys, users, viewer tokens)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from ...errors import InvalidRequest, UnsupportedMediaType
from .events import read_body

MAX_BODY = 16 * 1024


async def json_object(request: Request, limit: int = MAX_BODY) -> dict[str, Any]:
    """The body as a JSON object; 415 unless it is declared JSON (a cross-site form cannot
    send JSON), 400 when it is not one object."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise UnsupportedMediaType("send Content-Type: application/json")
    body = await read_body(request, limit)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the body is not valid JSON", errors=[
            {"field": "(body)", "reason": "not valid JSON"}]) from None
    if not isinstance(doc, dict):
        raise InvalidRequest("expected a JSON object", errors=[
            {"field": "(body)", "reason": "must be an object"}])
    return doc


def string_field(doc: dict[str, Any], name: str, *, required: bool = True,
                 max_len: int = 1024) -> str | None:
    value = doc.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise InvalidRequest(f"invalid {name}", errors=[
            {"field": name, "reason": f"a non-empty string of at most {max_len} characters"}])
    return value
