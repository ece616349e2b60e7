"""The one error tree of auditstream.

Every failure a caller can see is one of these; the HTTP layer renders them as
RFC 9457 ``application/problem+json`` (native API) or in a compat profile's own
documented shape. Nothing here knows about HTTP framing beyond a status code.

    AuditstreamError
    ├── ProblemError                 an answer to a client: carries status, title, detail
    │   ├── ElsewhereHome        307 another node sequences this tenant (``location``)
    │   ├── InvalidRequest       400 malformed input (bad JSON, bad parameter, unknown filter)
    │   │   ├── ValidationFailed 400 one or more field errors (``errors`` lists them)
    │   │   └── QuerySyntaxError 400 the ``q`` language could not be parsed (``position``)
    │   ├── AuthenticationRequired 401 no or unusable credentials
    │   ├── PermissionDenied     403 the credential lacks a scope or tenant
    │   ├── NotFound             404 no such resource *for this tenant*
    │   ├── NotAcceptable        406 none of the ``Accept`` types can be served
    │   ├── Conflict             409 an id was re-sent with different content
    │   ├── PayloadTooLarge      413 body or batch above the configured limits
    │   ├── UnsupportedMediaType 415 a body that is not JSON (``accept`` lists the types)
    │   ├── TooManyRequests      429 a per-credential limit (open streams) is reached
    │   └── InternalError        500 an unexpected failure (``request_id`` finds it in the log)
    └── StoreError                   the backend failed (never the caller's fault)
        ├── StoreClosed              the store was used after close()
        └── StoreUnavailable     503 writes are impossible for now (full disk, read-only file)
            └── Overloaded       503 the writer's queue is full; retry shortly
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuditstreamError",
    "AuthenticationRequired",
    "Conflict",
    "ElsewhereHome",
    "FieldError",
    "InternalError",
    "InvalidRequest",
    "NotAcceptable",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "PermissionDenied",
    "ProblemError",
    "QuerySyntaxError",
    "StoreClosed",
    "StoreError",
    "StoreUnavailable",
    "TooManyRequests",
    "UnsupportedMediaType",
    "ValidationFailed",
]


class AuditstreamError(Exception):
    """Base of every auditstream error."""


FieldError = dict[str, Any]
"""One field error: ``{"field": "timestamp", "reason": "...", "index": 3}`` (index for batches)."""


class ProblemError(AuditstreamError):
    status: int = 400
    title: str = "Bad Request"
    type_slug: str = "about:blank"

    def __init__(self, detail: str, *, errors: list[FieldError] | None = None, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class ElsewhereHome(ProblemError):
    """A write for, or a read of the log of, a tenant whose home is another node
    (``auditstream.homes``): the HTTP layer redirects it there (``Location``) or forwards
    it."""

    status = 307
    title = "Temporary Redirect"
    type_slug = "https://auditstream.dev/problems/elsewhere-home"

    def __init__(self, tenant: str, home: str, location: str):
        super().__init__(f"tenant {tenant!r} is sequenced by node {home!r}: send this "
                         f"request to {location}", home=home)
        self.location = location


class InvalidRequest(ProblemError):
    status = 400
    title = "Invalid request"
    type_slug = "https://auditstream.dev/problems/invalid-request"


class ValidationFailed(InvalidRequest):
    title = "Validation failed"
    type_slug = "https://auditstream.dev/problems/validation"


class QuerySyntaxError(InvalidRequest):
    title = "Query syntax error"
    type_slug = "https://auditstream.dev/problems/query-syntax"

    def __init__(self, detail: str, position: int, query: str = ""):
        super().__init__(f"{detail} at position {position}", position=position, query=query)
        self.position = position
        self.reason = detail


class AuthenticationRequired(ProblemError):
    status = 401
    title = "Authentication required"
    type_slug = "https://auditstream.dev/problems/unauthenticated"


class PermissionDenied(ProblemError):
    status = 403
    title = "Forbidden"
    type_slug = "https://auditstream.dev/problems/forbidden"


class NotFound(ProblemError):
    status = 404
    title = "Not found"
    type_slug = "https://auditstream.dev/problems/not-found"


class NotAcceptable(ProblemError):
    status = 406
    title = "Not Acceptable"
    type_slug = "https://auditstream.dev/problems/not-acceptable"


class Conflict(ProblemError):
    status = 409
    title = "Conflict"
    type_slug = "https://auditstream.dev/problems/conflict"


class PayloadTooLarge(ProblemError):
    status = 413
    title = "Payload too large"
    type_slug = "https://auditstream.dev/problems/too-large"


class UnsupportedMediaType(ProblemError):
    status = 415
    title = "Unsupported Media Type"
    type_slug = "https://auditstream.dev/problems/unsupported-media-type"


class TooManyRequests(ProblemError):
    status = 429
    title = "Too Many Requests"
    type_slug = "https://auditstream.dev/problems/too-many-requests"


class InternalError(ProblemError):
    status = 500
    title = "Internal Server Error"
    type_slug = "https://auditstream.dev/problems/internal"


class StoreError(AuditstreamError):
    """The storage backend failed; reported as 503/500, never blamed on the client."""


class StoreClosed(StoreError):
    pass


class StoreUnavailable(StoreError):
    """Writes cannot be accepted now (the file cannot be written); reads still work."""


class Overloaded(StoreUnavailable):
    """The writer's queue is full: nothing was accepted; retry after a moment."""
