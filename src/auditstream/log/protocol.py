"""What travels between the process that parsed a request and the writer: plain,
picklable values, no event loops or futures.

A worker sends an ``AppendRequest`` (or a ``RedactRequest``) and gets one ``Reply``: the
value, or an ``ErrorInfo`` that the worker raises again as the same error of
``auditstream.errors``. After each commit the writer publishes ``CommitNotice``s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn

from .. import errors
from .prepared import PreparedEvent


@dataclass(frozen=True, slots=True)
class Appended:
    """Where one appended event landed; ``created`` is False for an idempotent replay."""

    id: str
    seq: int
    created: bool = True


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """Append ``events`` (all or none) to ``tenant``'s log.

    ``client_ids`` holds the positions whose ``id`` the client chose (only those can
    collide with stored events). With ``idempotency_key`` a repeat of the same request (same
    ``request_hash``) answers the first result.
    """

    tenant: str
    events: tuple[PreparedEvent, ...]
    client_ids: frozenset[int] = frozenset()
    idempotency_key: str | None = None
    request_hash: str | None = None


@dataclass(frozen=True, slots=True)
class RedactRequest:
    """Blank one event (``event_id``) or the events at ``seqs`` (a purge chunk, older than
    ``before``), and record it in the log (``integrity.redaction``)."""

    tenant: str
    reason: str
    actor: dict[str, Any]
    event_id: str | None = None
    seqs: tuple[int, ...] = ()
    before: str | None = None


@dataclass(frozen=True, slots=True)
class CheckpointRequest:
    """Sign a checkpoint of ``tenant``'s log at ``size`` (only the writer holds the key)."""

    tenant: str
    size: int


Request = AppendRequest | RedactRequest | CheckpointRequest


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error of ``auditstream.errors``, as data."""

    kind: str  # the class name in auditstream.errors
    detail: str
    errors: list[dict[str, Any]] = field(default_factory=list)  # per-item field errors
    extra: dict[str, Any] = field(default_factory=dict)
    status: int = 503  # what an HTTP answer says

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        if isinstance(exc, errors.ProblemError):
            return cls(type(exc).__name__, exc.detail, exc.errors, exc.extra, exc.status)
        if isinstance(exc, errors.StoreError):
            return cls(type(exc).__name__, str(exc))
        return cls("StoreError", f"append failed: {exc}")

    def raise_(self) -> NoReturn:
        kind = getattr(errors, self.kind, None)
        if isinstance(kind, type) and issubclass(kind, errors.ProblemError) \
                and kind is not errors.QuerySyntaxError:
            raise kind(self.detail, errors=self.errors, **self.extra)
        if isinstance(kind, type) and issubclass(kind, errors.StoreError):
            raise kind(self.detail)
        raise errors.StoreError(self.detail)


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one request: ``value`` (a list of ``Appended``; for a redaction the
    stub or ``{"purged": n}``), or ``error``."""

    value: Any = None
    error: ErrorInfo | None = None

    def result(self) -> Any:
        if self.error is not None:
            self.error.raise_()
        return self.value


@dataclass(frozen=True, slots=True)
class CommitNotice:
    """After the commit that made them visible: ``tenant``'s events up to ``last_seq``."""

    tenant: str
    last_seq: int


__all__ = ["AppendRequest", "Appended", "CheckpointRequest", "CommitNotice", "ErrorInfo",
           "RedactRequest", "Reply", "Request"]
