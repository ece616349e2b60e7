"""``/v1/integrations``: push integrations of the caller's tenant (``admin`` scope)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ...auth.principal import Principal
from ...delivery.service import IntegrationService
from ...errors import InvalidRequest, StoreUnavailable
from ...query.params import int_param
from ..deps import admin
from ..openapi import operation
from . import contract as doc
from .events import json_response, read_body

router = APIRouter(prefix="/v1/integrations", tags=["integrations"])

#: Largest request body (a config with a PEM certificate fits many times).
MAX_BODY = 64 * 1024


def service(request: Request) -> IntegrationService:
    svc: IntegrationService | None = request.app.state.services.integrations
    if svc is None:
        raise StoreUnavailable("push integrations are unavailable on this server "
                               "(their state file could not be opened; see its log)")
    return svc


async def _json(request: Request, *, optional: bool = False) -> Any:
    body = await read_body(request, MAX_BODY)
    if optional and not body.strip():
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the body is not valid JSON") from None


def _query(request: Request, allowed: frozenset[str]) -> None:
    unknown = sorted(k for k in request.query_params if k not in allowed)
    if unknown:
        raise InvalidRequest(f"unknown parameter {unknown[0][:100]!r}", errors=[
            {"field": unknown[0][:100], "reason": "unknown parameter"}])


@router.post("", status_code=201, summary="Create a push integration",
             **operation(ok={201: doc.INTEGRATION}, errors=(400, 413),
                         body=doc.INTEGRATION_CREATE, scope="admin"))
async def create(request: Request, principal: Principal = Depends(admin)) -> Response:
    _query(request, frozenset())
    return json_response(await service(request).create(principal.tenant, await _json(request)),
                         201)


@router.get("", summary="List push integrations",
            **operation(ok={200: doc.INTEGRATION_LIST}, scope="admin"))
async def list_integrations(request: Request,
                            principal: Principal = Depends(admin)) -> Response:
    _query(request, frozenset())
    return json_response({"data": await service(request).list_for(principal.tenant)})


@router.get("/{integration_id}", summary="A push integration with its state and lag",
            **operation(ok={200: doc.INTEGRATION}, errors=(400, 404),
                        params=(doc.INTEGRATION_ID,), scope="admin"))
async def show(integration_id: str, request: Request,
               principal: Principal = Depends(admin)) -> Response:
    _query(request, frozenset())
    return json_response(await service(request).show(principal.tenant, integration_id))


@router.patch("/{integration_id}", summary="Change, pause or resume a push integration",
              **operation(ok={200: doc.INTEGRATION}, errors=(400, 404, 413),
                          params=(doc.INTEGRATION_ID,), body=doc.INTEGRATION_UPDATE,
                          scope="admin"))
async def update(integration_id: str, request: Request,
                 principal: Principal = Depends(admin)) -> Response:
    _query(request, frozenset())
    return json_response(await service(request).update(
        principal.tenant, integration_id, await _json(request)))


@router.delete("/{integration_id}", status_code=204,
               summary="Delete a push integration with its state and dead letters",
               **operation(ok={204: {"description": "Deleted."}}, errors=(400, 404),
                           params=(doc.INTEGRATION_ID,), scope="admin"))
async def delete(integration_id: str, request: Request,
                 principal: Principal = Depends(admin)) -> Response:
    _query(request, frozenset())
    service(request).delete(principal.tenant, integration_id)
    return Response(status_code=204)


@router.post("/{integration_id}/test", summary="Send a test event now",
             **operation(ok={200: doc.ATTEMPT}, errors=(400, 404),
                         params=(doc.INTEGRATION_ID,), scope="admin"))
async def test(integration_id: str, request: Request,
               principal: Principal = Depends(admin)) -> Response:
    """Sends one synthetic event (type `auditstream.test`) outside the cursor and answers
    what the receiver said; it also appears in the attempts."""
    _query(request, frozenset())
    return json_response(await service(request).test(principal.tenant, integration_id))


@router.get("/{integration_id}/attempts", summary="Recent delivery attempts",
            **operation(ok={200: doc.ATTEMPT_LIST}, errors=(400, 404),
                        params=(doc.INTEGRATION_ID, doc.ATTEMPT_LIMIT), scope="admin"))
async def attempts(integration_id: str, request: Request,
                   principal: Principal = Depends(admin)) -> Response:
    _query(request, frozenset({"limit"}))
    limit = int_param("limit", request.query_params.get("limit"), 50, 1, 200)
    return json_response({"data": service(request).attempts(
        principal.tenant, integration_id, limit)})


@router.get("/{integration_id}/dead-letters", summary="Events the receiver refused",
            **operation(ok={200: doc.DEAD_LETTERS}, errors=(400, 404),
                        params=(doc.INTEGRATION_ID, *doc.LETTER_PARAMS), scope="admin"))
async def dead_letters(integration_id: str, request: Request,
                       principal: Principal = Depends(admin)) -> Response:
    _query(request, frozenset({"after_seq", "limit"}))
    qp = request.query_params
    return json_response(service(request).dead_letters(
        principal.tenant, integration_id,
        int_param("after_seq", qp.get("after_seq"), 0, 0, 2**63 - 1),
        int_param("limit", qp.get("limit"), 100, 1, 1000)))


@router.post("/{integration_id}/redeliver", status_code=202,
             summary="Send dead letters again",
             **operation(ok={202: doc.REDELIVERY}, errors=(400, 404, 413),
                         params=(doc.INTEGRATION_ID,), body=doc.REDELIVER_BODY,
                         scope="admin"))
async def redeliver(integration_id: str, request: Request,
                    principal: Principal = Depends(admin)) -> Response:
    _query(request, frozenset())
    return json_response(service(request).redeliver(
        principal.tenant, integration_id, await _json(request, optional=True)), 202)
