"""Request dependencies shared by every router: the caller's principal, the services."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.requests import HTTPConnection

from ..auth.principal import Principal
from ..errors import AuthenticationRequired, PermissionDenied
from ..model.ids import is_valid_tenant


def credential(request: HTTPConnection) -> str | None:
    """The presented secret: ``X-API-Key`` or ``Authorization: Bearer``."""
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


def authenticate(request: HTTPConnection) -> Principal:
    """The caller, or 401. Accepts API keys and, when configured, JWTs."""
    secret = credential(request)
    if secret is None:
        raise AuthenticationRequired(
            "credentials required: send X-API-Key or Authorization: Bearer")
    return authenticate_secret(request.app.state.services, secret)


def authenticate_secret(services: Any, secret: str) -> Principal:
    """The principal of an API key or JWT, or 401 (also what a long-lived stream re-checks:
    a revoked key stops working within the key cache's 2 s)."""
    if services.tokens.enabled and services.tokens.looks_like_jwt(secret):
        return known_tenant(services, services.tokens.verify(secret))
    principal = services.catalog.authenticate_key(secret)
    if principal is None:
        raise AuthenticationRequired("invalid or revoked API key")
    return principal


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


async def writer(request: Request) -> Principal:
    p = authenticate(request)
    p.require("events:write")
    return p


async def admin(request: Request) -> Principal:
    p = authenticate(request)
    p.require("admin")
    return p
