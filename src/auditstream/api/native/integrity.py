"""``/v1/integrity``: checkpoints, the public key, inclusion and consistency proofs; redaction."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import PlainTextResponse, Response

from ...auth.principal import Principal
from ...errors import InvalidRequest, NotFound
from ...integrity.service import LogService
from ...query.params import int_param
from ..deps import admin, reader
from ..openapi import operation
from . import contract as doc
from .events import json_response, read_body

router = APIRouter(prefix="/v1", tags=["integrity"])
TEXT = "text/plain; charset=utf-8"
MAX_SIZE = 2**62


def log_service(request: Request) -> LogService:
    svc: LogService | None = request.app.state.services.log
    if svc is None:
        raise NotFound("integrity is disabled on this deployment (AUDITSTREAM_INTEGRITY)")
    return svc


@router.get("/integrity/checkpoint", summary="Latest signed checkpoint (C2SP signed note)",
            response_class=PlainTextResponse,
            **operation(ok={200: doc.SIGNED_NOTE}, errors=(307, 404), scope="events:read"))
async def checkpoint(request: Request, principal: Principal = Depends(reader)) -> Response:
    note = await log_service(request).checkpoint(principal.tenant)
    return Response(note, media_type=TEXT)


@router.get("/integrity/public-key", summary="Checkpoint verifier key (C2SP vkey)",
            response_class=PlainTextResponse,
            **operation(ok={200: doc.VERIFIER_KEY}, errors=(404,), secured=False))
async def public_key(request: Request) -> Response:
    return Response(log_service(request).public_key + "\n", media_type=TEXT)


@router.get("/integrity/proof/inclusion", summary="RFC 9162 inclusion proof of an event",
            **operation(ok={200: doc.INCLUSION_ANSWER}, errors=(307, 400, 404),
                        params=doc.INCLUSION, scope="events:read"))
async def inclusion(request: Request, principal: Principal = Depends(reader)) -> Response:
    qp = request.query_params
    event_id = qp.get("event_id")
    if not event_id:
        raise InvalidRequest("event_id is required", errors=[
            {"field": "event_id", "reason": "required"}])
    size = qp.get("tree_size")
    tree_size = int_param("tree_size", size, 0, 1, MAX_SIZE) if size is not None else None
    return json_response(
        await log_service(request).inclusion(principal.tenant, event_id, tree_size))


@router.get("/integrity/proof/consistency", summary="RFC 9162 consistency proof",
            **operation(ok={200: doc.CONSISTENCY_ANSWER}, errors=(307, 400, 404),
                        params=doc.CONSISTENCY, scope="events:read"))
async def consistency(request: Request, principal: Principal = Depends(reader)) -> Response:
    qp = request.query_params
    if qp.get("from") is None:
        raise InvalidRequest("from is required", errors=[{"field": "from", "reason": "required"}])
    first = int_param("from", qp.get("from"), 0, 0, MAX_SIZE)
    to = int_param("to", qp["to"], 0, 0, MAX_SIZE) if qp.get("to") is not None else None
    return json_response(await log_service(request).consistency(principal.tenant, first, to))


@router.post("/events/{event_id}/redact", summary="Erase an event's content, keep its proof",
             **operation(ok={200: doc.EVENT}, errors=(307, 400, 404, 413, 415),
                         params=(doc.EVENT_ID,), body=doc.REDACT_BODY, scope="admin"))
async def redact(event_id: str, request: Request,
                 principal: Principal = Depends(admin)) -> Response:
    import orjson

    body = await read_body(request, 64 * 1024)
    reason = ""
    if body.strip():
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("body is not valid JSON") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("reason", ""), str):
            raise InvalidRequest("expected {\"reason\": \"...\"}", errors=[
                {"field": "reason", "reason": "must be a string"}])
        reason = doc.get("reason", "")[:1000]
    ev = await request.app.state.services.store.redact(
        principal.tenant, event_id, reason,
        actor={"type": principal.kind, "id": principal.subject})
    if ev is None:
        raise NotFound(f"no event {event_id!r}")
    return json_response(ev)
