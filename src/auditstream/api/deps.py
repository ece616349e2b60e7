"""Request dependencies shared by every router: the caller's principal, the services."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fastapi import Request
from starlette.requests import HTTPConnection

from ..auth.catalog import SESSION_PREFIX, VIEWER_PREFIX
from ..auth.principal import Principal
from ..errors import AuthenticationRequired, PermissionDenied
from ..model.ids import is_valid_tenant
from ..model.times import now_us
from ..query.filter import Node, and_
from ..query.qlang import parse_q

#: The console's session cookie (HttpOnly, SameSite=Strict; set by ``POST /v1/session``).
SESSION_COOKIE = "auditstream_session"
#: The header that must repeat a session's CSRF token on every state-changing call made
#: with the cookie (the token is ``GET /v1/session``'s ``csrf_token``).
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def header_credential(request: HTTPConnection) -> str | None:
    """The secret of the request's headers: ``X-API-Key`` or ``Authorization: Bearer``."""
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        raise AuthenticationRequired("Authorization must be 'Bearer <api key or JWT>'")
    return None


def credential(request: HTTPConnection) -> str | None:
    """The presented secret: the headers', else (plain HTTP only) the console's session
    cookie. A WebSocket never authenticates with the cookie: a page of another site could
    open one with it, and a handshake carries no CSRF token."""
    secret = header_credential(request)
    if secret is None and request.scope.get("type") == "http":
        secret = request.cookies.get(SESSION_COOKIE) or None
    return secret


def csrf_token(session_secret: str) -> str:
    """The CSRF token of a session: derived from its secret (which only the HttpOnly cookie
    holds), so a page of another origin can neither read nor compute it."""
    return hashlib.sha256(b"auditstream-csrf\0" + session_secret.encode()).hexdigest()


def authenticate(request: HTTPConnection, *, allow_viewer: bool = False) -> Principal:
    """The caller, or 401. Accepts API keys, console sessions (the cookie; a state-changing
    call must also send ``X-CSRF-Token``) and, when configured, JWTs. A viewer token is
    refused (403) unless the route asks for ``allow_viewer``: only the routes that apply
    its fixed filter (``scope_filter``) take one."""
    secret = header_credential(request)
    from_cookie = False
    if secret is None:
        secret = credential(request)
        from_cookie = secret is not None
    if secret is None:
        raise AuthenticationRequired(
            "credentials required: send X-API-Key or Authorization: Bearer")
    principal = authenticate_secret(request.app.state.services, secret,
                                    allow_viewer=allow_viewer)
    if from_cookie and request.scope.get("method", "GET") not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), csrf_token(secret).encode()):
            raise PermissionDenied("a call made with the session cookie must send the "
                                   "session's X-CSRF-Token (GET /v1/session)")
    return principal


def authenticate_secret(services: Any, secret: str, *, allow_viewer: bool = False
                        ) -> Principal:
    """The principal of an API key, console session, viewer token or JWT, or 401 (also
    what a long-lived stream re-checks: a revoked key stops working within the key cache's
    2 s). A viewer token gets 403 unless ``allow_viewer`` (see ``authenticate``)."""
    if secret.startswith(SESSION_PREFIX):
        principal = services.catalog.authenticate_session(secret)
        if principal is None:
            raise AuthenticationRequired("the session has expired or was ended: sign in")
        return principal
    if secret.startswith(VIEWER_PREFIX):
        principal = services.catalog.authenticate_viewer(secret)
        if principal is None:
            raise AuthenticationRequired("invalid or expired viewer token")
        if not allow_viewer:
            raise PermissionDenied("a viewer token only reads events, aggregates and "
                                   "exports, within its filter")
        return principal
    if services.tokens.enabled and services.tokens.looks_like_jwt(secret):
        return known_tenant(services, services.tokens.verify(secret))
    principal = services.catalog.authenticate_key(secret)
    if principal is None:
        raise AuthenticationRequired("invalid or revoked API key")
    return principal


def scope_filter(principal: Principal, where: Node | None, now: int | None = None) -> Node:
    """``where`` limited to what the principal may read: a viewer token's fixed filter is
    ANDed in here, the one place every read a viewer token can make goes through (the
    routes that take one build their filter with this; every other route refuses it)."""
    if principal.where is None:
        return and_(where)
    return and_(parse_q(principal.where, now_us=now_us() if now is None else now), where)


def known_tenant(services: Any, principal: Principal) -> Principal:
    """A JWT names its tenant in a claim; only tenants that exist may be named, unless the
    deployment lets tokens create them (``AUDITSTREAM_JWT_CREATE_TENANTS``)."""
    tenant = principal.tenant
    if not is_valid_tenant(tenant):
        raise AuthenticationRequired("the token's tenant claim is not a valid tenant name")
    if not services.catalog.tenant_exists(tenant):
        if not services.settings.jwt_create_tenants:
            raise PermissionDenied(f"tenant {tenant!r} named by the token does not exist")
        services.catalog.ensure_tenant(tenant)
    return principal


# The dependencies are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in a
# worker thread, a hop that cost more than the key lookup itself (a primary-key read).


async def reader(request: Request) -> Principal:
    p = authenticate(request)
    p.require("events:read")
    return p


async def scoped_reader(request: Request) -> Principal:
    """A reader that may be a viewer token: only for routes that build their filter with
    ``scope_filter`` (and check single events against it)."""
    p = authenticate(request, allow_viewer=True)
    p.require("events:read")
    return p


async def writer(request: Request) -> Principal:
    p = authenticate(request)
    p.require("events:write")
    return p


async def admin(request: Request) -> Principal:
    p = authenticate(request)
    p.require("admin")
    return p
