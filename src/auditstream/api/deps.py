"""Request dependencies shared by every router: the caller's principal, the services."""

from __future__ import annotations

from fastapi import Request

from ..auth.principal import Principal
from ..errors import AuthenticationRequired


def credential(request: Request) -> str | None:
    """The presented secret: ``X-API-Key``, ``Authorization: Bearer``, or ``?token=``."""
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


def authenticate(request: Request) -> Principal:
    """The caller, or 401. Accepts API keys and, when configured, JWTs."""
    secret = credential(request)
    if secret is None:
        raise AuthenticationRequired(
            "credentials required: send X-API-Key or Authorization: Bearer")
    services = request.app.state.services
    if services.tokens.enabled and services.tokens.looks_like_jwt(secret):
        return services.tokens.verify(secret)
    principal = services.catalog.authenticate_key(secret)
    if principal is None:
        raise AuthenticationRequired("invalid or revoked API key")
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
