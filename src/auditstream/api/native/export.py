"""``GET /v1/events/export``: the whole matching stream as NDJSON, CSV or Parquet.

Parameters: ``format`` (``ndjson`` default, ``csv``, ``parquet``), every native filter
(``since``, ``until``, ``q``, ``min_severity``, fields and dotted paths), ``after_seq``
(only events with a greater ``seq``) and ``limit`` (stop after that many events).

Guarantees:

* **Constant memory.** The body is streamed batch by batch (``export.scan_raw_batches``,
  batches of about ``export.BATCH_BYTES`` of events, whatever the events weigh) through
  the shared encoders of :mod:`auditstream.export`; the server holds one batch (or one
  Parquet row group) at a time, at any export size. A slow client slows the scan (the
  ASGI server applies back-pressure) instead of growing a buffer.
* **Bounded in parallel.** At most ``AUDITSTREAM_MAX_EXPORTS`` exports stream at once
  (default 4), and one tenant at most half of them (at least one), so parallel exports
  cannot add their memory up without limit nor one tenant take every slot. Beyond that
  the answer is 503 (problem+json) with ``Retry-After``: the server is busy, not the
  request wrong. A slot is given back when the response ends, however it ends.
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

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ...auth.principal import Principal
from ...errors import ProblemError
from ...export import FORMATS, Encoder, encoder, export_filename, scan_raw_batches
from ...query.params import choice_param, filter_from_params, int_param
from ..deps import scope_filter, scoped_reader
from ..openapi import operation
from ..problems import problem_response
from . import contract as doc

router = APIRouter(prefix="/v1", tags=["export"])

#: Parameters of the export that are not filters.
EXPORT_PARAMS = frozenset({"format", "after_seq", "limit"})
_MAX_SEQ = 2**63 - 1
#: Seconds a client is asked to wait when every export slot is taken.
RETRY_AFTER_S = 10


class ExportSlots:
    """Exports streaming at once: at most ``size``, and at most half of them (at least
    one) for any one tenant (see the module docstring)."""

    def __init__(self, size: int):
        self.size = size
        self.per_tenant = max(1, size // 2)
        self.used: dict[str, int] = {}

    def take(self, tenant: str) -> bool:
        if sum(self.used.values()) >= self.size or self.used.get(tenant, 0) >= self.per_tenant:
            return False
        self.used[tenant] = self.used.get(tenant, 0) + 1
        return True

    def give(self, tenant: str) -> None:
        left = self.used[tenant] - 1
        if left:
            self.used[tenant] = left
        else:
            del self.used[tenant]


class _SlotResponse(StreamingResponse):
    """A streaming response that gives its export slot back when it ends, however it ends
    (finished, failed, or the client went away before the body started)."""

    def __init__(self, *args: Any, release: Callable[[], None], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def stream_export(
    batches: AsyncIterator[list[bytes]],
    first: list[bytes] | None,
    enc: Encoder,
) -> AsyncIterator[bytes]:
    """Encoded bytes of ``first`` and then the rest of ``batches``.

    Encoding runs in a worker thread (CSV and Parquet cost milliseconds per batch), so the
    event loop keeps serving other requests during a large export.
    """
    try:
        head = enc.start()
        if head:
            yield head
        batch, first = first, None
        while batch is not None:
            chunk = await anyio.to_thread.run_sync(enc.encode_raw, batch)
            if chunk:
                yield chunk
            del chunk, batch  # hold one batch at a time, not this one and the next
            batch = await anext(batches, None)
        tail = await anyio.to_thread.run_sync(enc.finish)
        if tail:
            yield tail
    finally:
        # Close the scan now (a client disconnect or the limit ends the stream early), not
        # whenever the generator happens to be collected.
        await batches.aclose()  # type: ignore[attr-defined]


def _slots(request: Request) -> ExportSlots:
    state = request.app.state
    slots: ExportSlots | None = getattr(state, "export_slots", None)
    if slots is None:
        slots = state.export_slots = ExportSlots(state.services.settings.max_exports)
    return slots


def _busy(request: Request, slots: ExportSlots) -> Response:
    err = ProblemError(f"too many exports are streaming ({slots.size} at most, "
                       f"{slots.per_tenant} per tenant); retry in {RETRY_AFTER_S} s")
    err.status, err.title = 503, "Service unavailable"
    response = problem_response(request, err)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


@router.get("/events/export", summary="Stream matching events as NDJSON, CSV or Parquet",
            response_class=StreamingResponse,
            **operation(ok={200: doc.EXPORT_ANSWER}, params=doc.with_filters(*doc.EXPORT),
                        scope="events:read"))
async def export_events(
    request: Request, principal: Principal = Depends(scoped_reader)
) -> Response:
    qp = request.query_params
    fmt = choice_param("format", qp.get("format"), "ndjson", FORMATS)
    after_seq = int_param("after_seq", qp.get("after_seq"), 0, 0, _MAX_SEQ)
    limit_raw = qp.get("limit")
    limit = None if limit_raw is None else int_param("limit", limit_raw, 0, 1, _MAX_SEQ)
    where = scope_filter(principal, filter_from_params(qp.multi_items(), allowed=EXPORT_PARAMS))
    slots, tenant = _slots(request), principal.tenant
    if not slots.take(tenant):
        return _busy(request, slots)
    try:
        return await _export(request, tenant, fmt, where, after_seq, limit,
                             lambda: slots.give(tenant))
    except BaseException:
        slots.give(tenant)
        raise


async def _export(request: Request, tenant: str, fmt: str, where: Any, after_seq: int,
                  limit: int | None, release: Callable[[], None]) -> Response:
    store = request.app.state.services.store
    # Read before the scan starts: every matching event up to here is in the body.
    last_seq = await store.last_seq(tenant)
    batches = scan_raw_batches(store, tenant, where, after_seq=after_seq, limit=limit)
    # The first batch is read here so that store errors still become problem responses.
    first = await anext(batches, None)
    enc = encoder(fmt)
    filename = export_filename(tenant, fmt)
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Auditstream-Last-Seq": str(last_seq),
        "Auditstream-Tenant": tenant,
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return _SlotResponse(stream_export(batches, first, enc), media_type=enc.media_type,
                         headers=headers, release=release)


__all__ = ["router", "stream_export", "EXPORT_PARAMS", "ExportSlots"]
