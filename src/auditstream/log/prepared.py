"""An event made ready for the log off the writer thread (or in another process).

Only the writer knows an event's ``seq``. Everything else about its stored form is done
where the request was parsed: the body is serialised (RFC 8785 when the log is signed)
with a placeholder seq and split around it, and the values an index keys on are derived
(``row_values``: one function, re-run by ``verify`` to prove the index). The writer then
only joins ``head + seq + tail``, hashes and stores.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import ValidationFailed
from ..integrity.canonical import CanonicalizationError, canonical_json_bytes
from ..model.severity import RANK
from ..model.times import parse_us

#: Index columns of an event, in ``row_values`` order.
ROW_COLUMNS = ("id", "ts", "received", "type", "category", "severity", "outcome")
#: Fields the server sets; ignored when checking that a re-sent id has the same content.
SERVER_FIELDS = frozenset({"seq", "tenant", "received_at"})
_SCALARS = frozenset({str, int, float})  # exact types: a bool is not indexed as 0/1

# Random and 15 digits: canonical JSON prints it as is, and no producer can guess it (an
# event that contains it anyway is serialised again with another). One per batch: drawing
# one per event was 8% of the HTTP thread's ingest time (a system call each).
_rng = random.SystemRandom()

#: A declared dotted path split for fast lookup: (top-level field, remaining segments).
PathSegments = list[tuple[str, tuple[str, ...]]]


def segments(paths: Sequence[str]) -> PathSegments:
    return [(p.split(".")[0], tuple(p.split(".")[1:])) for p in paths]


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """One event, ready to be given its seq: ``head + str(seq) + tail`` is its body."""

    id: str
    head: bytes
    tail: bytes
    columns: tuple[Any, ...]  # ROW_COLUMNS
    paths: tuple[Any, ...]  # the declared paths' scalars, in declaration order
    text: tuple[str | None, str | None]  # (title, description) for full-text search
    key: bytes | None = None  # content key, for client-chosen ids (see content_key)

    def body(self, seq: int) -> bytes:
        return b"%s%d%s" % (self.head, seq, self.tail)


def row_values(
    ev: dict[str, Any], path_segments: PathSegments,
    received_cache: dict[str, int] | None = None,
) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[str | None, str | None]]:
    """What an index keys an event on: (columns in ``ROW_COLUMNS`` order, declared path
    values, (title, description) for the full-text table)."""
    received = ev["received_at"]
    if received_cache is None:
        received_us = parse_us(received)
    else:
        received_us = received_cache.get(received) or received_cache.setdefault(
            received, parse_us(received))
    fields = (ev["id"], parse_us(ev["timestamp"]), received_us, ev["type"],
              ev.get("category"), RANK[ev["severity"]], ev.get("outcome"))
    return fields, path_values(ev, path_segments), (ev.get("title"), ev.get("description"))


def path_values(ev: dict[str, Any], path_segments: PathSegments,
                kinds: frozenset[type] = _SCALARS) -> tuple[Any, ...]:
    """The value at each declared path when it is of one of ``kinds`` (scalars for the
    SQLite index, strings for ClickHouse's), else None."""
    paths = []
    for head, segs in path_segments:
        val: Any = ev.get(head)
        for seg in segs:
            val = val.get(seg) if type(val) is dict else None
        paths.append(val if type(val) in kinds else None)
    return tuple(paths)


def content_key(event: dict[str, Any]) -> bytes:
    """What must match for a re-sent client id to count as the same event: everything but
    the server's fields, and the timestamp too when the server filled it in (the retry of
    an event sent without one gets a new one)."""
    ignore = SERVER_FIELDS
    if event.get("timestamp") == event.get("received_at"):
        ignore = ignore | {"timestamp"}
    doc = {k: v for k, v in event.items() if k not in ignore}
    try:
        raw = canonical_json_bytes(doc)
    except CanonicalizationError:  # stored with integrity off: any stable form will do
        raw = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).digest()


def prepare(
    events: list[dict[str, Any]], *, canonical: bool, path_segments: PathSegments,
    client_ids: frozenset[int] = frozenset(),
) -> list[PreparedEvent]:
    """Prepare each event; raises ``ValidationFailed`` for one RFC 8785 cannot represent."""
    out: list[PreparedEvent] = []
    received_us: dict[str, int] = {}
    placeholder = _placeholder()
    for i, ev in enumerate(events):
        head, tail = _split_body(ev, canonical, i, placeholder)
        columns, paths, text = row_values(ev, path_segments, received_us)
        key = content_key(ev) if i in client_ids else None
        out.append(PreparedEvent(ev["id"], head, tail, columns, paths, text, key))
    return out


def _placeholder() -> int:
    return _rng.randrange(10**14, 10**15)


def _split_body(ev: dict[str, Any], canonical: bool, index: int,
                placeholder: int) -> tuple[bytes, bytes]:
    while True:
        ev["seq"] = placeholder
        if canonical:
            try:
                body = canonical_json_bytes(ev)
            except CanonicalizationError as exc:
                raise ValidationFailed("an event cannot be canonicalised (RFC 8785)", errors=[
                    {"index": index, "field": "(event)", "reason": str(exc)}]) from None
        else:
            body = orjson.dumps(ev)
        mark = b'"seq":%d' % placeholder
        if body.count(mark) == 1:
            at = body.index(mark) + 6
            return body[:at], body[at + len(mark) - 6:]
        placeholder = _placeholder()


__all__ = ["ROW_COLUMNS", "SERVER_FIELDS", "PathSegments", "PreparedEvent", "content_key",
           "path_values", "prepare", "row_values", "segments"]
