"""Redaction as an entry of the signed log, so the database file cannot fake one.

Erasing an event's content (``POST /v1/events/{id}/redact``, retention ``purge``) keeps
its leaf hash, so every proof still verifies; but a stub whose content no longer hashes
to its leaf is exactly what someone editing the file would also produce. So the writer,
in the same transaction that blanks the content, appends a **redaction record** to the
tenant's log: an ordinary event of type ``auditstream.redaction`` (a type no producer may
send) that says who redacted what, when and why, and commits to every stub it made:

* each stub keeps the fields in ``KEEPS`` and gains ``redacted: {"at", "reason", "by"}``,
  where ``by`` is the seq of the record;
* the record's ``payload.redaction`` holds ``count``, ``first_seq``, ``last_seq``,
  ``reason`` and ``digest``: SHA-256 over, for each stub in seq order, the seq (8 bytes,
  big-endian), the event's original leaf hash and the SHA-256 of the stub's RFC 8785
  bytes.

The record is itself a leaf of the tree, covered by the signed checkpoint of its commit.
``verify`` accepts a stub only where a record says so, with exactly those bytes; editing
a kept field or the reason of a real redaction, or turning a live event into a stub,
breaks the record's digest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .canonical import canonical_bytes

#: Types the server writes into a tenant's log itself; producers may not send them.
RESERVED_TYPE_PREFIX = "auditstream."
RECORD_TYPE = "auditstream.redaction"

#: What a stub keeps of the event: where it sits in the log and what rollups count.
KEEPS = ("id", "tenant", "seq", "timestamp", "received_at", "type", "category", "severity",
         "outcome")


def is_stub(event: dict[str, Any]) -> bool:
    return "redacted" in event


def is_record(event: dict[str, Any]) -> bool:
    return event.get("type") == RECORD_TYPE and not is_stub(event)


def stub_of(event: dict[str, Any], *, at: str, reason: str, by: int) -> dict[str, Any]:
    stub = {k: event[k] for k in KEEPS if k in event}
    stub["redacted"] = {"at": at, "reason": reason, "by": by}
    return stub


class Digest:
    """The running commitment of one record to its stubs (see the module docstring)."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.count = 0
        self.first_seq = 0
        self.last_seq = 0

    def add(self, seq: int, leaf: bytes, stub_bytes: bytes) -> None:
        self._h.update(seq.to_bytes(8, "big") + leaf + hashlib.sha256(stub_bytes).digest())
        self.count += 1
        self.first_seq = self.first_seq or seq
        self.last_seq = seq

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def stub_bytes(stub: dict[str, Any]) -> bytes:
    return canonical_bytes(stub)


def record(
    *, event_id: str, tenant: str, at: str, actor: dict[str, Any], reason: str,
    digest: Digest, subject_id: str | None = None, before: str | None = None,
) -> dict[str, Any]:
    """The record event (without ``seq``, which the writer assigns)."""
    detail: dict[str, Any] = {
        "count": digest.count, "first_seq": digest.first_seq, "last_seq": digest.last_seq,
        "reason": reason, "digest": digest.hexdigest(),
    }
    if before is not None:
        detail["before"] = before
    title = (f"Redacted event {subject_id}" if subject_id is not None
             else f"Purged {digest.count} events older than {before}")
    ev: dict[str, Any] = {
        "id": event_id, "tenant": tenant, "timestamp": at, "received_at": at,
        "type": RECORD_TYPE, "category": "integrity", "severity": "info",
        "outcome": "success", "title": title, "actor": actor,
        "payload": {"redaction": detail},
    }
    if subject_id is not None:
        ev["subject"] = {"type": "event", "id": subject_id, "seq": digest.first_seq}
    return ev


@dataclass(frozen=True)
class RecordClaim:
    """What a record says it redacted."""

    count: int
    digest: str


def claim_of(event: dict[str, Any]) -> RecordClaim | None:
    """The claim of a record event; None when the record is malformed."""
    detail = (event.get("payload") or {}).get("redaction")
    if not isinstance(detail, dict):
        return None
    count, digest = detail.get("count"), detail.get("digest")
    if type(count) is not int or not isinstance(digest, str):
        return None
    return RecordClaim(count, digest)


__all__ = ["KEEPS", "RECORD_TYPE", "RESERVED_TYPE_PREFIX", "Digest", "RecordClaim",
           "claim_of", "is_record", "is_stub", "record", "stub_bytes", "stub_of"]
