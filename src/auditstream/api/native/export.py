"""``GET /v1/events/export``: the whole matching stream as NDJSON, CSV or Parquet.

Parameters: ``format`` (``ndjson`` default, ``csv``, ``parquet``), every native filter
(``since``, ``until``, ``q``, ``min_severity``, fields and dotted paths), ``after_seq``
(only events with a greater ``seq``) and ``limit`` (stop after that many events).

Guarantees:

* **Constant memory.** The body is streamed from ``EventStore.scan`` batch by batch
  through the shared encoders of :mod:`auditstream.export`; the server holds one batch
  (or one Parquet row group) at a time, at any export size. A slow client slows the scan
  (the ASGI server applies back-pressure) instead of growing a buffer.
* **Seq order, resumable.** Events come in ascending ``seq``. A reader that stops after
  event ``n`` resumes exactly with ``after_seq=n``: ``seq`` is per-tenant, gap-free and
  assigned at commit, unlike timestamps, which clients set and which arrive late.
  ``auditstream pull`` is built on this.
* **Errors before bytes.** Parameters are checked and the first batch is read before the
  response starts, so a bad request or a failing store answers a problem document, not
  a 200 with a truncated body. A failure later in the stream aborts the connection (the
  chunked body never terminates properly), so a client cannot mistake a cut export for a
  complete one.
* ``Auditstream-Last-Seq`` response header: the tenant's highest committed ``seq`` when
  the export began. Every matching event up to it is in the body (unless ``limit`` cut
  the export short), so a filtered incremental reader may resume from
  ``max(last seq received, header)`` once a response ends below its ``limit``.
* ``Auditstream-Tenant`` response header: the tenant the credential reads, so an
  incremental reader can check that its saved position (a per-tenant ``seq``) is one of
  this tenant's before writing anything.

The route must be registered before ``/v1/events/{event_id}``, which would take
``export`` for an id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from starlette.responses import StreamingResponse

from ...auth.principal import Principal
from ...export import FORMATS, Encoder, encoder, export_filename
from ...query.params import choice_param, filter_from_params, int_param
from ..deps import reader
from ..openapi import operation
from . import contract as doc

router = APIRouter(prefix="/v1", tags=["export"])

#: Parameters of the export that are not filters.
EXPORT_PARAMS = frozenset({"format", "after_seq", "limit"})
#: Events read from the store per batch.
SCAN_BATCH = 1000
_MAX_SEQ = 2**63 - 1


async def stream_export(
    batches: AsyncIterator[list[dict[str, Any]]],
    first: list[dict[str, Any]] | None,
    enc: Encoder,
    limit: int | None,
) -> AsyncIterator[bytes]:
    """Encoded bytes of ``first`` and then the rest of ``batches``, ``limit`` events at most.

    Encoding runs in a worker thread (CSV and Parquet cost milliseconds per batch), so the
    event loop keeps serving other requests during a large export.
    """
    remaining = limit
    try:
        head = enc.start()
        if head:
            yield head
        batch = first
        while batch is not None:
            if remaining is not None:
                batch = batch[:remaining]
                remaining -= len(batch)
            if batch:
                chunk = await anyio.to_thread.run_sync(enc.encode, batch)
                if chunk:
                    yield chunk
            if remaining == 0:
                break
            batch = await anext(batches, None)
        tail = await anyio.to_thread.run_sync(enc.finish)
        if tail:
            yield tail
    finally:
        # Close the scan now (a client disconnect or the limit ends the stream early), not
        # whenever the generator happens to be collected.
        await batches.aclose()  # type: ignore[attr-defined]


@router.get("/events/export", summary="Stream matching events as NDJSON, CSV or Parquet",
            response_class=StreamingResponse,
            **operation(ok={200: doc.EXPORT_ANSWER}, params=doc.with_filters(*doc.EXPORT),
                        scope="events:read"))
async def export_events(
    request: Request, principal: Principal = Depends(reader)
) -> StreamingResponse:
    qp = request.query_params
    fmt = choice_param("format", qp.get("format"), "ndjson", FORMATS)
    after_seq = int_param("after_seq", qp.get("after_seq"), 0, 0, _MAX_SEQ)
    limit_raw = qp.get("limit")
    limit = None if limit_raw is None else int_param("limit", limit_raw, 0, 1, _MAX_SEQ)
    where = filter_from_params(qp.multi_items(), allowed=EXPORT_PARAMS)
    store = request.app.state.services.store
    # Read before the scan starts: every matching event up to here is in the body.
    last_seq = await store.last_seq(principal.tenant)
    batch = SCAN_BATCH if limit is None else max(1, min(SCAN_BATCH, limit))
    batches = store.scan(principal.tenant, where, after_seq=after_seq, batch=batch)
    # The first batch is read here so that store errors still become problem responses.
    first = await anext(batches, None)
    enc = encoder(fmt)
    filename = export_filename(principal.tenant, fmt)
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Auditstream-Last-Seq": str(last_seq),
        "Auditstream-Tenant": principal.tenant,
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(
        stream_export(batches, first, enc, limit), media_type=enc.media_type, headers=headers
    )


__all__ = ["router", "stream_export", "EXPORT_PARAMS"]
