"""``/v1/session``: the console's password sign-in, as an HttpOnly session cookie.

This is the native login (the platform-audit profile has its own, in its own shape). A
signed-in browser holds only the cookie (``HttpOnly``: no script reads it; ``SameSite=
Strict``: no other site's page sends it). Every state-changing call made with it must also
send ``X-CSRF-Token``, which ``GET /v1/session`` and the sign-in answer give the console's
own page (``api.deps.authenticate`` checks it). Sign-in takes JSON only, so a form on
another site cannot sign a browser in to an attacker's account.
"""

from __future__ import annotations

from typing import Any, NotRequired

import anyio
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from typing_extensions import TypedDict

from ...auth.principal import Principal
from ...errors import AuthenticationRequired
from ...model.times import format_us
from ..deps import SESSION_COOKIE, authenticate, credential, csrf_token
from ..openapi import content, operation, ref, request_body
from .body import json_object, string_field
from .events import json_response

router = APIRouter(prefix="/v1", tags=["session"])


class SessionInfo(TypedDict):
    """Who is signed in, and the CSRF token the console sends back on writes."""

    tenant: str
    username: str
    scopes: list[str]
    csrf_token: str
    expires_at: NotRequired[str]


SESSION = content("application/json", ref(SessionInfo), "The session.")
SIGN_IN = request_body({"application/json": {
    "type": "object", "required": ["username", "password"],
    "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
}}, "A user's name and password (users: `auditstream users create` or `POST /v1/users`).")


def session_doc(principal: Principal, secret: str, expires: int | None = None
                ) -> dict[str, Any]:
    doc = {"tenant": principal.tenant, "username": principal.subject,
           "scopes": sorted(principal.scopes), "csrf_token": csrf_token(secret)}
    if expires is not None:
        doc["expires_at"] = format_us(expires * 1_000_000)
    return doc


@router.post("/session", summary="Sign in with a password: sets the session cookie",
             **operation(ok={200: SESSION}, errors=(400, 401, 413, 415), body=SIGN_IN,
                         secured=False, error_text={
                             401: "Unknown user or wrong password."}))
async def sign_in(request: Request) -> Response:
    doc = await json_object(request)
    username = string_field(doc, "username", max_len=255)
    password = string_field(doc, "password")
    assert username is not None and password is not None
    svc = request.app.state.services
    # Argon2 takes tens of milliseconds: off the event loop.
    user = await anyio.to_thread.run_sync(svc.catalog.authenticate_user, username, password)
    if user is None:
        raise AuthenticationRequired("unknown user or wrong password")
    seconds = int(svc.settings.session_hours * 3600)
    secret, expires = svc.catalog.create_session(user, seconds)
    response = json_response(session_doc(user, secret, expires))
    response.set_cookie(SESSION_COOKIE, secret, max_age=seconds, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    response.headers["Cache-Control"] = "no-store"
    return response


async def session_principal(request: Request) -> Principal:
    principal = authenticate(request)
    if principal.kind != "user":
        raise AuthenticationRequired("no console session: sign in with POST /v1/session")
    return principal


@router.get("/session", summary="The signed-in user and the session's CSRF token",
            **operation(ok={200: SESSION}, errors=()))
async def current(request: Request,
                  principal: Principal = Depends(session_principal)) -> Response:
    response = json_response(session_doc(principal, credential(request) or ""))
    response.headers["Cache-Control"] = "no-store"
    return response


class SignedOut(TypedDict):
    signed_out: bool


@router.delete("/session", summary="Sign out: ends the session",
               **operation(ok={200: content("application/json", ref(SignedOut),
                                            "Signed out; the cookie is cleared.")},
                           errors=()))
async def sign_out(request: Request,
                   principal: Principal = Depends(session_principal)) -> Response:
    request.app.state.services.catalog.end_session(credential(request) or "")
    response = json_response({"signed_out": True})
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


__all__ = ["router"]
