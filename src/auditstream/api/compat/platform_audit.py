"""The platform-audit profile: ``GET /v1/audit/events`` and ``POST /v1/auth/token``.

Served exactly as the seed documents it, which is a FastAPI application's own OpenAPI:

* **Auth.** ``X-API-Key: <key>``, or ``Authorization: Bearer <API key or JWT>``. JWTs come
  from ``POST /v1/auth/token`` (OAuth2 password flow, form fields ``username`` and
  ``password`` as FastAPI's ``OAuth2PasswordRequestForm``) for users created with
  ``auditstream users create``. No credential answers FastAPI's ``OAuth2PasswordBearer``
  401 ``{"detail": "Not authenticated"}``; a bad one ``{"detail": "Could not validate
  credentials"}``; both with ``WWW-Authenticate: Bearer``.
* **Token signing.** HS256 with ``settings.jwt_secret``, so the same token also works on
  the native API. When ``jwt_secret`` is empty (HS256 disabled engine-wide), the profile
  signs with a random secret of its own, created on first use beside the database
  (``<db>.jwt-secret``, mode 0600) and shared by every worker process and every server on
  that file, and verifies those tokens itself: login still works, a token outlives a
  restart, and the native API does not accept it. Deleting the file (and restarting)
  invalidates every such token.
* **Errors.** FastAPI's shapes: ``{"detail": "<message>"}`` with the HTTP status, and 422
  ``{"detail": [{"loc", "msg", "type", ...}]}`` for invalid parameters (FastAPI's own
  validation, so messages and types are FastAPI's). A cursor the store rejects is reported
  the same way, as a 422 on ``["query", "cursor"]``.
* **Records.** Every documented field is present; unknown ones are ``null``. The four
  required strings that a canonical event may lack (``actor_type``, ``source``,
  ``event_group``, ``status``) read ``"unknown"``, and filtering ``event_group=unknown`` or
  ``status=unknown`` also selects events without a category / outcome, so a value read from
  a record always finds that record again. Likewise ``vm_id=7`` finds a ``vm_id`` stored as
  the number 7 (shown as ``"7"``), and only canonical digit strings read as integers.
* **Scope.** The reference documents no event types or value sets, so the profile serves
  the tenant's whole stream unless ``AUDITSTREAM_COMPAT_PLATFORM_AUDIT_SCOPE`` (a ``q``
  filter, see ``scope.py``) narrows it.
"""

from __future__ import annotations

import math
import re
import secrets
from typing import Annotated, Any

import anyio.to_thread
import jwt
import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import (
    validation_error_definition,
    validation_error_response_definition,
)
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from starlette.responses import Response

from ...auth.principal import Principal
from ...auth.tokens import TokenVerifier
from ...errors import AuthenticationRequired, ProblemError
from ...query.filter import Eq, Exists, Node, Not, Or, Scalar, and_
from ...secret_file import beside, load_or_create
from ...store.base import EventQuery
from ..openapi import ErrorShape, Param, content, operation, ref
from .fields import as_str as _str
from .fields import first_str as _first
from .fields import obj as _obj
from .fields import scalars_shown_as
from .schemas import AuditEventList, HTTPError, Token
from .scope import scope

PREFIX = "/compat/platform-audit"
TOKEN_PATH = "/v1/auth/token"
#: Lifetime of a password-flow token, in seconds.
TOKEN_TTL_S = 3600
#: Beside the database: the profile's own HS256 secret when ``jwt_secret`` is empty.
JWT_SECRET_SUFFIX = ".jwt-secret"
#: Fallback for required string fields a canonical event does not carry.
UNKNOWN = "unknown"
_INT64 = 2**63
# The integers a record shows: a canonical decimal string, as a JSON number would print.
_INTEGER = re.compile(r"^-?(0|[1-9][0-9]*)$")
JSON = "application/json"

NOT_AUTHENTICATED = "Not authenticated"
BAD_CREDENTIALS = "Could not validate credentials"
BAD_LOGIN = "Incorrect username or password"

# auto_error=False: a missing or non-Bearer Authorization header is not an error by itself,
# because X-API-Key may carry the credential instead. The scheme is declared for OpenAPI.
_oauth2 = OAuth2PasswordBearer(tokenUrl=PREFIX + TOKEN_PATH, auto_error=False)


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=JSON, headers=headers)


# -- errors ---------------------------------------------------------------------------


def render_error(request: Request, exc: ProblemError) -> Response:
    """FastAPI's ``HTTPException`` body; parameter errors as a FastAPI 422."""
    if exc.status == 400 and exc.errors:
        # A parameter FastAPI accepted but the engine rejected (a foreign or corrupt cursor):
        # the seed documents 422 validation errors only, so answer in that shape.
        detail = [{"loc": ["query", e.get("field", "query")], "msg": e.get("reason", exc.detail),
                   "type": "value_error"} for e in exc.errors]
        return json_response({"detail": detail}, status=422)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return json_response({"detail": exc.detail}, status=exc.status, headers=headers)


def render_validation(request: Request, exc: RequestValidationError) -> Response:
    """Exactly FastAPI's default ``request_validation_exception_handler`` body."""
    return json_response({"detail": jsonable_encoder(exc.errors())}, status=422)


# -- authentication -------------------------------------------------------------------


def token_verifier(request: Request) -> TokenVerifier:
    """The verifier that signs and checks password-flow tokens for this app.

    With ``jwt_secret`` set this is the engine's verifier. Without it, a verifier with the
    profile's own secret, read (or created) on first use from ``<db>.jwt-secret`` and kept
    on ``app.state``: the same secret in every process on the database, so a token issued
    by one worker is accepted by the others.
    """
    svc = request.app.state.services
    if svc.settings.jwt_secret:
        return svc.tokens  # type: ignore[no-any-return]
    verifier = getattr(request.app.state, "platform_audit_tokens", None)
    if verifier is None:
        secret = load_or_create(beside(svc.settings.db, JWT_SECRET_SUFFIX),
                                lambda: secrets.token_urlsafe(32))
        verifier = TokenVerifier(secret=secret,
                                 tenant_claim=svc.settings.jwt_tenant_claim,
                                 audience=svc.settings.jwt_audience)
        request.app.state.platform_audit_tokens = verifier
    return verifier  # type: ignore[no-any-return]


def _verify_jwt(request: Request, token: str) -> Principal:
    svc = request.app.state.services
    try:
        alg = jwt.get_unverified_header(token).get("alg")
    except jwt.PyJWTError:
        raise AuthenticationRequired(BAD_CREDENTIALS) from None
    if alg == "HS256" and not svc.settings.jwt_secret:
        return token_verifier(request).verify(token)
    if not svc.tokens.enabled:
        raise AuthenticationRequired(BAD_CREDENTIALS)
    return svc.tokens.verify(token)  # type: ignore[no-any-return]


def current_principal(
    request: Request,
    bearer: Annotated[str | None, Depends(_oauth2)],
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    """The caller with the ``events:read`` scope: 401 without or with a bad credential,
    403 when it lacks the scope. ``X-API-Key`` wins over ``Authorization``."""
    secret = (x_api_key or "").strip() or (bearer or "").strip()
    if not secret:
        raise AuthenticationRequired(NOT_AUTHENTICATED)
    principal: Principal | None
    if TokenVerifier.looks_like_jwt(secret):
        try:
            principal = _verify_jwt(request, secret)
        except AuthenticationRequired:
            # The engine's reasons (expired, bad signature …) are not part of this API.
            principal = None
    else:
        principal = request.app.state.services.catalog.authenticate_key(secret)
    if principal is None:
        raise AuthenticationRequired(BAD_CREDENTIALS)
    principal.require("events:read")
    return principal


# -- records --------------------------------------------------------------------------




def _int(value: Any) -> int | None:
    """An integer field: ints, integral floats and canonical digit strings (``"42"``, not
    ``"042"`` or ``" 42"``, which ``user_id=42`` would not find); anything else null."""
    if isinstance(value, bool):
        return None
    integral = isinstance(value, float) and value.is_integer()
    if integral or (isinstance(value, str) and len(value) <= 40 and _INTEGER.match(value)):
        value = int(value)
    # Beyond 64 bits a JSON integer is not portable (orjson cannot even write it).
    return value if isinstance(value, int) and -_INT64 <= value < _INT64 else None


def _num(value: Any) -> float | int | None:
    """A number field: ints and finite floats, numeric strings; anything else null."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def to_record(ev: dict[str, Any]) -> dict[str, Any]:
    """A canonical event as an ``AuditEventResponse``, fields in the documented order."""
    actor, subject = _obj(ev, "actor"), _obj(ev, "subject")
    source, ctx = _obj(ev, "source"), _obj(ev, "context")
    return {
        "id": ev["id"],
        "created_at": ev["timestamp"],
        "user_id": _int(ctx.get("user_id")),
        "actor_type": _str(actor.get("type")) or UNKNOWN,
        "actor_id": _str(actor.get("id")),
        "source": _str(source.get("name")) or UNKNOWN,
        "event_group": _str(ev.get("category")) or UNKNOWN,
        "event_type": ev["type"],
        "status": _str(ev.get("outcome")) or UNKNOWN,
        "resource_type": _str(subject.get("type")),
        "resource_id": _str(subject.get("id")),
        "session_id": _str(ctx.get("session_id")),
        "vm_id": _str(ctx.get("vm_id")),
        "task_id": _int(ctx.get("task_id")),
        "request_id": _str(ctx.get("request_id")),
        "correlation_id": _str(ctx.get("correlation_id")),
        "http_method": _str(ctx.get("http_method")),
        "path": _str(ctx.get("path")),
        "http_status": _int(ctx.get("http_status")),
        "latency_ms": _num(ctx.get("latency_ms")),
        "ip_address": _first(source.get("ip"), actor.get("ip")),
        "user_agent": _first(ctx.get("user_agent"), actor.get("user_agent")),
        "node_ip": _str(source.get("node_ip")),
        "worker_id": _str(source.get("worker_id")),
        "event_payload": ev.get("payload"),
        "error_message": _str(ev.get("error_message")),
    }


# -- filters --------------------------------------------------------------------------


def _eq_or_unknown(path: str, value: str) -> Node:
    """Equality; ``unknown`` also selects events without the field (rendered ``unknown``)."""
    if value == UNKNOWN:
        return Or((Eq(path, (value,)), Not(Exists(path))))
    return Eq(path, (value,))


def _int_values(n: int) -> tuple[Scalar, ...]:
    """An integer id matches whether the producer stored it as a JSON number or a string.

    Numbers beyond 64 bits cannot be stored as JSON integers (SQLite cannot bind them
    either), so only their string form is searched.
    """
    return (n, str(n)) if -_INT64 <= n < _INT64 else (str(n),)


def build_filter(
    *, event_group: str | None, event_type: str | None, status: str | None,
    user_id: int | None, vm_id: str | None, session_id: str | None,
) -> Node:
    """The filter tree of the documented parameters; empty strings mean "not given"."""
    return and_(
        _eq_or_unknown("category", event_group) if event_group else None,
        Eq("type", (event_type,)) if event_type else None,
        _eq_or_unknown("outcome", status) if status else None,
        Eq("context.user_id", _int_values(user_id)) if user_id is not None else None,
        # Records spell numbers out as text: "7" also finds a vm_id stored as 7.
        Eq("context.vm_id", scalars_shown_as(vm_id)) if vm_id else None,
        Eq("context.session_id", scalars_shown_as(session_id)) if session_id else None,
    )


# -- OpenAPI declarations -------------------------------------------------------------

# FastAPI's own validation error schemas: this profile's 422 is exactly FastAPI's.
ref(validation_error_definition, "ValidationError")
ERRORS = ErrorShape("application/json", ref(HTTPError), overrides={422: (
    JSON, ref(validation_error_response_definition, "HTTPValidationError"))})
_NULLABLE_STR = {"anyOf": [{"type": "string"}, {"type": "null"}]}
LIST_DOC = operation(
    ok={200: content(JSON, ref(AuditEventList), "Newest first.")},
    errors=(400, 422), shape=ERRORS, scope="events:read", params=(
        Param("event_group", _NULLABLE_STR,
              "Event group (category); `unknown` also selects events without one."),
        Param("event_type", _NULLABLE_STR, "Event type."),
        Param("status", _NULLABLE_STR,
              "Status (outcome); `unknown` also selects events without one."),
        Param("user_id", {"anyOf": [{"type": "integer"}, {"type": "null"}]}, "User id."),
        Param("vm_id", _NULLABLE_STR, "VM id."),
        Param("session_id", _NULLABLE_STR, "Session id."),
        Param("cursor", _NULLABLE_STR, "The `next_cursor` of the previous page."),
        Param("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
              "Events per page."),
        Param("X-API-Key", _NULLABLE_STR, "An API key (instead of a bearer token).",
              location="header"),
    ))
LOGIN_DOC = operation(
    ok={200: content(JSON, ref(Token), "A bearer JWT for this API and the native one.",
                     headers={"Cache-Control": {"schema": {"type": "string"}}})},
    errors=(401, 422), shape=ERRORS, secured=False,
    error_text={401: "Incorrect username or password."})


# -- routes ---------------------------------------------------------------------------


def router() -> APIRouter:
    """The profile's routes, relative to ``PREFIX``."""
    r = APIRouter(tags=["platform-audit"])

    @r.get("/v1/audit/events", summary="List Audit Events", **LIST_DOC)
    async def list_audit_events(
        request: Request,
        principal: Annotated[Principal, Depends(current_principal)],
        event_group: Annotated[str | None, Query()] = None,
        event_type: Annotated[str | None, Query()] = None,
        status: Annotated[str | None, Query()] = None,
        user_id: Annotated[int | None, Query()] = None,
        vm_id: Annotated[str | None, Query()] = None,
        session_id: Annotated[str | None, Query()] = None,
        cursor: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> Response:
        """Newest first; ``next_cursor`` is null on the last page."""
        where = and_(scope(request, "platform_audit"), build_filter(
            event_group=event_group, event_type=event_type, status=status, user_id=user_id,
            vm_id=vm_id, session_id=session_id))
        page = await request.app.state.services.store.query(
            principal.tenant,
            EventQuery(filter=where, sort="timestamp", order="desc", limit=limit,
                       cursor=cursor or None),
        )
        return json_response({"items": [to_record(e) for e in page.events],
                              "next_cursor": page.next_cursor})

    @r.post(TOKEN_PATH, summary="Login For Access Token", **LOGIN_DOC)
    async def login(
        request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()],
    ) -> Response:
        """OAuth2 password flow: ``{"access_token": <JWT>, "token_type": "bearer"}``.

        The token names the user's tenant (claim ``settings.jwt_tenant_claim``), the user
        (``sub``) and their scopes (``scope``), narrowed to the requested ``scope`` when the
        form sends one. It lasts ``TOKEN_TTL_S`` seconds.
        """
        catalog = request.app.state.services.catalog
        # Argon2 is deliberately slow: keep it off the event loop.
        principal = await anyio.to_thread.run_sync(
            catalog.authenticate_user, form.username, form.password)
        if principal is None:
            raise AuthenticationRequired(BAD_LOGIN)
        scopes = sorted(principal.scopes)
        if form.scopes:
            scopes = [s for s in scopes if s in form.scopes]
        verifier = token_verifier(request)
        claims: dict[str, Any] = {"sub": principal.subject,
                                  verifier.tenant_claim: principal.tenant,
                                  "scope": " ".join(scopes)}
        if verifier.audience:
            claims["aud"] = verifier.audience
        token = verifier.issue(claims, ttl_s=TOKEN_TTL_S)
        return json_response({"access_token": token, "token_type": "bearer"},
                             headers={"Cache-Control": "no-store"})

    return r
