"""What travels between a worker and the writer (log/protocol.py) is plain data: every
request, reply and notice survives pickle (the frames of ``log.process``) unchanged, and an
error crosses as the same error of ``auditstream.errors``."""

from __future__ import annotations

import pickle
from typing import Any

import orjson
import pytest

from auditstream import errors
from auditstream.integrity.canonical import canonical_bytes
from auditstream.log.prepared import prepare, segments
from auditstream.log.protocol import (
    Appended,
    AppendRequest,
    CheckpointRequest,
    CommitNotice,
    ErrorInfo,
    RedactRequest,
    Reply,
)
from auditstream.model.ids import new_event_id
from auditstream.model.times import format_us

T0 = 1_780_000_000_000_000


def roundtrip(obj: Any) -> Any:
    return pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def prepared_request() -> AppendRequest:
    events = [{"id": new_event_id(), "tenant": "a", "timestamp": format_us(T0),
               "received_at": format_us(T0), "type": "x", "severity": "high",
               "title": "ünïcode ✓", "subject": {"ecosystem": "npm"}, "llm": {"cost": 0.5}}
              for _ in range(3)]
    prepared = prepare(events, canonical=True, path_segments=segments(["subject.ecosystem"]),
                       client_ids=frozenset({1}))
    return AppendRequest("a", tuple(prepared), frozenset({1}), "key", "hash")


@pytest.mark.parametrize("obj", [
    prepared_request(),
    RedactRequest("a", "gdpr", {"type": "user", "id": "dpo"}, event_id="evt_1"),
    RedactRequest("a", "retention", {"type": "system"}, seqs=(1, 2, 5), before="2026-01-01"),
    CheckpointRequest("a", 17),
    Reply(value=[Appended("evt_1", 1), Appended("evt_2", 7, created=False)]),
    Reply(value={"id": "evt_1", "redacted": {"at": "2026-01-01T00:00:00Z", "by": 3}}),
    Reply(value={"purged": 5000}),
    Reply(value="note\n\n— name sig\n"),
    Reply(error=ErrorInfo.of(errors.Conflict("reused", errors=[
        {"index": 1, "field": "id", "reason": "different content"}]))),
    CommitNotice("a", 42),
    [CommitNotice("a", 1), CommitNotice("b", 2)],
], ids=lambda o: type(o).__name__)
def test_every_message_survives_pickle(obj: Any) -> None:
    assert roundtrip(obj) == obj


def test_a_prepared_event_gives_the_same_bytes_on_the_other_side() -> None:
    request = prepared_request()
    received = roundtrip(request)
    for mine, theirs in zip(request.events, received.events, strict=True):
        body = theirs.body(12)
        assert body == mine.body(12)
        assert body == canonical_bytes(orjson.loads(body))  # RFC 8785, as it was prepared
        assert theirs.columns == mine.columns and theirs.paths == ("npm",)
    assert received.events[1].key is not None and received.events[0].key is None


@pytest.mark.parametrize("exc", [
    errors.Conflict("reused", errors=[{"field": "Idempotency-Key", "reason": "r"}]),
    errors.ValidationFailed("bad", errors=[{"index": 0, "field": "type", "reason": "r"}]),
    errors.InvalidRequest("the log has no size 9"),
    errors.PayloadTooLarge("too big", limit=10),
    errors.StoreUnavailable("this log is not signed"),
    errors.Overloaded("the writer has 50000 events waiting"),
    errors.StoreClosed("the writer is stopped"),
], ids=lambda e: type(e).__name__)
def test_an_error_crosses_as_itself(exc: Exception) -> None:
    reply = roundtrip(Reply(error=ErrorInfo.of(exc)))
    with pytest.raises(type(exc)) as info:
        reply.result()
    got = info.value
    assert type(got) is type(exc) and str(got) == str(exc)
    if isinstance(exc, errors.ProblemError):
        assert isinstance(got, errors.ProblemError)
        assert (got.detail, got.errors, got.extra) == (exc.detail, exc.errors, exc.extra)


def test_an_unexpected_error_crosses_as_a_store_error() -> None:
    reply = roundtrip(Reply(error=ErrorInfo.of(RuntimeError("disk I/O error"))))
    with pytest.raises(errors.StoreError, match="disk I/O error"):
        reply.result()
    forged = Reply(error=ErrorInfo("SystemExit", "not an error of ours"))
    with pytest.raises(errors.StoreError):
        forged.result()
