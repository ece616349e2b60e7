"""``/v1/keys`` and ``/v1/users``: a tenant's API keys and console users, for its admins.

The same operations as ``auditstream keys`` and ``auditstream users``, limited to the
caller's own tenant, so the console's admin page uses only the public API. A key's secret
is in the creation answer only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from typing_extensions import TypedDict

from ...auth.catalog import MIN_PASSWORD
from ...auth.principal import DEFAULT_SCOPES, SCOPES, Principal
from ...errors import InvalidRequest, NotFound
from ..deps import admin
from ..openapi import Param, content, operation, ref, request_body
from .body import json_object, string_field
from .events import json_response

router = APIRouter(prefix="/v1", tags=["admin"])


class ApiKeyInfo(TypedDict):
    id: str
    tenant: str
    scopes: list[str]
    hint: str
    created: int
    revoked: int | None
    name: str | None


class ApiKeyCreated(ApiKeyInfo):
    key: str


class ApiKeyList(TypedDict):
    data: list[ApiKeyInfo]


class UserInfo(TypedDict):
    username: str
    scopes: list[str]
    created: int


class UserList(TypedDict):
    data: list[UserInfo]


_SCOPES = {"type": "array", "items": {"type": "string", "enum": list(SCOPES)}}
KEY_BODY = request_body({"application/json": {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 200}, "scopes": _SCOPES}}},
    "The key's label and scopes (default: events:write, events:read).", required=False)
USER_BODY = request_body({"application/json": {
    "type": "object", "required": ["username", "password"], "properties": {
        "username": {"type": "string", "maxLength": 255},
        "password": {"type": "string", "minLength": 12}, "scopes": _SCOPES}}},
    "The user's name, password (at least 12 characters) and scopes (default events:read).")
KEY_ID = Param("key_id", {"type": "string"}, "The key's id (`key_…`).", location="path")


def scopes_field(doc: dict[str, Any], default: tuple[str, ...]) -> list[str]:
    scopes = doc.get("scopes", list(default))
    if (not isinstance(scopes, list) or not scopes
            or not all(isinstance(s, str) and s in SCOPES for s in scopes)):
        raise InvalidRequest("invalid scopes", errors=[
            {"field": "scopes", "reason": f"a non-empty list of {', '.join(SCOPES)}"}])
    return scopes


@router.get("/keys", summary="The tenant's API keys (never their secrets)",
            **operation(ok={200: content("application/json", ref(ApiKeyList), "The keys.")},
                        errors=(), scope="admin"))
async def list_keys(request: Request, principal: Principal = Depends(admin)) -> Response:
    keys = request.app.state.services.catalog.keys(principal.tenant)
    return json_response({"data": [k.as_dict() for k in keys]})


@router.post("/keys", status_code=201, summary="Create an API key (its secret is shown once)",
             **operation(ok={201: content("application/json", ref(ApiKeyCreated),
                                          "The key, with its secret.")},
                         errors=(400, 413, 415), body=KEY_BODY, scope="admin"))
async def create_key(request: Request, principal: Principal = Depends(admin)) -> Response:
    doc = await json_object(request) if await request.body() else {}
    name = string_field(doc, "name", required=False, max_len=200)
    scopes = scopes_field(doc, DEFAULT_SCOPES)
    key = request.app.state.services.catalog.create_key(principal.tenant, scopes, name=name)
    return json_response(key.as_dict(), status=201, headers={"Cache-Control": "no-store"})


@router.delete("/keys/{key_id}", summary="Revoke an API key of the tenant",
               **operation(ok={200: content("application/json", ref(ApiKeyInfo),
                                            "The revoked key.")},
                           errors=(404,), params=(KEY_ID,), scope="admin"))
async def revoke_key(key_id: str, request: Request,
                     principal: Principal = Depends(admin)) -> Response:
    catalog = request.app.state.services.catalog
    # Another tenant's key does not exist for this caller: the same 404 as an unknown id.
    if not any(k.id == key_id and k.revoked is None for k in catalog.keys(principal.tenant)):
        raise NotFound(f"no active key {key_id!r}")
    catalog.revoke_key(key_id)
    revoked = next(k for k in catalog.keys(principal.tenant) if k.id == key_id)
    return json_response(revoked.as_dict())


@router.get("/users", summary="The tenant's console users",
            **operation(ok={200: content("application/json", ref(UserList), "The users.")},
                        errors=(), scope="admin"))
async def list_users(request: Request, principal: Principal = Depends(admin)) -> Response:
    return json_response({"data": request.app.state.services.catalog.users(principal.tenant)})


@router.post("/users", status_code=201, summary="Create a console user of the tenant",
             **operation(ok={201: content("application/json", ref(UserInfo), "The user.")},
                         errors=(400, 409, 413, 415), body=USER_BODY, scope="admin"))
async def create_user(request: Request, principal: Principal = Depends(admin)) -> Response:
    doc = await json_object(request)
    username = string_field(doc, "username", max_len=255)
    password = string_field(doc, "password")
    assert username is not None and password is not None
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest("password too short", errors=[
            {"field": "password", "reason": f"at least {MIN_PASSWORD} characters"}])
    scopes = scopes_field(doc, ("events:read",))
    catalog = request.app.state.services.catalog
    catalog.create_user(principal.tenant, username, password, scopes)
    made = next(u for u in catalog.users(principal.tenant) if u["username"] == username)
    return json_response(made, status=201)


__all__ = ["router"]
