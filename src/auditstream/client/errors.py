"""What the SDK raises, drawn as a tree. Every error is an ``AuditstreamError``.

    AuditstreamError                   (auditstream.errors: the project's one root)
    └── ClientError                    anything the SDK raises on purpose
        ├── APIConnectionError         no answer: connection refused, reset, timed out
        ├── APIError                   the server answered 4xx/5xx (RFC 9457 problem fields)
        │   ├── AuthError              401/403: the credential is missing, wrong or lacks a scope
        │   └── NotFoundError          404
        ├── BatchError                 a batcher could not deliver events (``events`` holds them)
        ├── StreamError                the stream cannot go on (``code``: close code or error code)
        │   └── StreamAuthError        closed with 4401/4403: reconnecting would not help
        └── VerificationError          what the server sent does not prove out (``verify=True``)
            ├── ProofError             an event is not included in its signed checkpoint
            ├── ForkError              a new checkpoint does not extend the one seen before
            └── RollbackError          the log shrank below a checkpoint seen before

``ForkError`` and ``RollbackError`` are also the ``auditstream.integrity.witness`` errors of
the same names (they subclass them), so code that handles ``auditstream pull``'s refusals
handles the SDK's too.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import orjson

from ..errors import AuditstreamError
from ..integrity import witness
from .types import Event

__all__ = [
    "APIConnectionError",
    "APIError",
    "AuthError",
    "BatchError",
    "ClientError",
    "ForkError",
    "NotFoundError",
    "ProofError",
    "RollbackError",
    "StreamAuthError",
    "StreamError",
    "VerificationError",
    "raise_for_problem",
]


class ClientError(AuditstreamError):
    """Base of everything the SDK raises on purpose."""


class APIConnectionError(ClientError):
    """The server could not be reached or the connection broke (the cause is chained)."""


class APIError(ClientError):
    """The server refused a request. ``status``, ``title``, ``detail`` and ``errors`` (the
    list of ``{index?, field, reason}``) come from its RFC 9457 problem document."""

    def __init__(self, status: int, title: str, detail: str,
                 errors: list[dict[str, Any]] | None = None,
                 problem: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.problem = problem or {}

    @property
    def retryable(self) -> bool:
        """True when the same request may succeed later (timeouts, rate limits, 5xx)."""
        return self.status in (408, 429) or self.status >= 500


class AuthError(APIError):
    """401 or 403: no usable credential, or one without the scope the route needs."""


class NotFoundError(APIError):
    """404: no such event (for this tenant), or integrity is off on the server."""


class BatchError(ClientError):
    """A batcher could not deliver ``events`` (in order); nothing was dropped silently.

    Raised by ``flush``/``close`` (the events are still buffered and will be sent again by
    the next flush) and for a batch the server refused as invalid (those events are no
    longer buffered: ``events`` is the only copy). The server's answer is ``__cause__``.
    """

    def __init__(self, message: str, events: list[Event]) -> None:
        super().__init__(message)
        self.events = events


class StreamError(ClientError):
    """The live stream cannot go on: a fatal close code or an ``error`` message.

    ``code`` is the WebSocket close code (an ``int``, e.g. 4401) or the protocol's error
    code (a ``str``: ``invalid_filter``, ``invalid_message``, ``not_found``).
    """

    def __init__(self, code: int | str, reason: str) -> None:
        super().__init__(f"{code}: {reason}" if reason else str(code))
        self.code = code
        self.reason = reason


class StreamAuthError(StreamError):
    """Closed with 4401 (credential missing, invalid or revoked) or 4403 (no events:read)."""


class VerificationError(ClientError, ValueError):
    """What the server sent does not prove out against its public key and what was seen."""


class ProofError(VerificationError):
    """An event does not hash to a leaf of its signed checkpoint, or comes without a proof."""


class ForkError(VerificationError, witness.ForkError):
    """A checkpoint does not extend the one seen before: entries were rewritten."""


class RollbackError(VerificationError, witness.RollbackError):
    """The log no longer holds the entries of a checkpoint seen before."""


def raise_for_problem(response: httpx.Response) -> None:
    """Raise the ``APIError`` an error response stands for; return on 2xx.

    The body is read first (streamed responses too), so the problem document is in it.
    """
    if response.is_success:
        return
    response.read()
    doc: Any = None
    with contextlib.suppress(orjson.JSONDecodeError):
        doc = orjson.loads(response.content)
    if not isinstance(doc, dict):
        doc = {}
    title = str(doc.get("title") or response.reason_phrase or "error")
    detail = str(doc.get("detail") or "")
    errors = doc.get("errors") if isinstance(doc.get("errors"), list) else None
    cls = (AuthError if response.status_code in (401, 403)
           else NotFoundError if response.status_code == 404 else APIError)
    raise cls(response.status_code, title, detail, errors, doc)
