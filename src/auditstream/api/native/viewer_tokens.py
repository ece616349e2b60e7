"""``POST /v1/viewer-tokens``: short-lived, read-only tokens for the embeddable viewer.

A vendor's backend (an admin credential) asks for a token of its tenant, optionally held
to a fixed ``q`` filter (one customer's organisation, say), and hands it to the browser of
that customer, whose page frames ``/console/embed?token=…``. What the token can do is
decided in ``api.deps``, not here: it reads (events, one event with its proof, aggregates,
exports) and nothing else, every route refuses it unless it applies its filter, and the
filter is ANDed into every read, so no query parameter can widen it.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from typing_extensions import TypedDict

from ...auth.principal import Principal
from ...errors import InvalidRequest, NotFound, QuerySyntaxError
from ...model.times import format_us, now_us
from ...query.qlang import parse_q
from ..deps import admin
from ..openapi import Param, content, operation, ref, request_body
from .body import json_object, string_field
from .events import json_response

router = APIRouter(prefix="/v1", tags=["console"])
DEFAULT_TTL_S = 900
MAX_TTL_S = 86_400


class ViewerToken(TypedDict):
    """A viewer token (shown once) and where the embeddable viewer takes it."""

    id: str
    token: str
    tenant: str
    q: str | None
    expires_at: str
    embed_url: str


BODY = request_body({"application/json": {
    "type": "object", "properties": {
        "q": {"type": "string", "maxLength": 4096,
              "description": "Fixed filter (the q language) every read is held to."},
        "ttl_seconds": {"type": "integer", "minimum": 60, "maximum": MAX_TTL_S,
                        "default": DEFAULT_TTL_S},
    },
}}, "The token's fixed filter and lifetime.", required=False)


@router.post("/viewer-tokens", status_code=201,
             summary="A short-lived read-only token for the embeddable viewer",
             **operation(ok={201: content("application/json", ref(ViewerToken),
                                          "The token, shown once.")},
                         errors=(400, 413, 415), body=BODY, scope="admin"))
async def create_viewer_token(request: Request,
                              principal: Principal = Depends(admin)) -> Response:
    doc = await json_object(request) if await request.body() else {}
    q = string_field(doc, "q", required=False, max_len=4096)
    if q is not None:
        try:
            parse_q(q, now_us=now_us())
        except QuerySyntaxError as exc:
            raise InvalidRequest("invalid q", errors=[
                {"field": "q", "reason": exc.detail}]) from None
    ttl = doc.get("ttl_seconds", DEFAULT_TTL_S)
    if type(ttl) is not int or not 60 <= ttl <= MAX_TTL_S:
        raise InvalidRequest("invalid ttl_seconds", errors=[
            {"field": "ttl_seconds", "reason": f"an integer between 60 and {MAX_TTL_S}"}])
    made = request.app.state.services.catalog.create_viewer_token(
        principal.tenant, q, ttl, f"{principal.kind}:{principal.subject}")
    return json_response({
        "id": made["id"], "token": made["token"], "tenant": made["tenant"], "q": q,
        "expires_at": format_us(made["expires"] * 1_000_000),
        "embed_url": "/console/embed?token=" + quote(made["token"]),
    }, status=201, headers={"Cache-Control": "no-store"})


class ViewerTokenRevoked(TypedDict):
    id: str
    revoked: bool


TOKEN_ID = Param("token_id", {"type": "string"}, "The token's id (`vt_…`).", location="path")


@router.delete("/viewer-tokens/{token_id}", summary="End a viewer token before it expires",
               **operation(ok={200: content("application/json", ref(ViewerTokenRevoked),
                                            "The token no longer works.")},
                           errors=(404,), params=(TOKEN_ID,), scope="admin"))
async def revoke_viewer_token(token_id: str, request: Request,
                              principal: Principal = Depends(admin)) -> Response:
    # Another tenant's token does not exist for this caller: the same 404 as an unknown id.
    if not request.app.state.services.catalog.revoke_viewer_token(principal.tenant, token_id):
        raise NotFound(f"no live viewer token {token_id!r}")
    return json_response({"id": token_id, "revoked": True})


__all__ = ["router"]
