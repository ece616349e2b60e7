"""``auditstream ingest FILE``: events from a file into a tenant, batch by batch, saying
exactly which lines were committed.

* **Positions are the file's own.** In NDJSON a position is the file line (blank lines
  count, as in an editor); in a JSON array it is the item number. Every message names
  positions, never an index inside a batch.
* **A re-run never duplicates.** An item without its own ``id`` gets a derived one:
  ``evt_`` + 32 hex digits of a hash chained over the tenant and every item up to and
  including this one. The id names "this content, after exactly this content", so a
  re-run of the file (after fixing a bad line, or after an append-only log grew) finds
  what is already stored and does not send it again, while the same line in another
  file (a daily ``{"type":"heartbeat"}``) is another event, not a "duplicate" that is
  silently dropped. The price: editing a line that was already stored makes it and every
  later line new. An item with its own ``id`` keeps it and gets the store's idempotency:
  same content is "already present", other content fails at that line.
* **Batches are all or nothing**: up to ``batch`` items, and never more bytes than the
  server's body limit. The first batch that fails stops the run; the report says what
  was stored before it, what was already there, and the line that failed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from .errors import ProblemError, StoreError
from .query.filter import Eq
from .services import Services
from .store.base import EventQuery

__all__ = ["IngestReport", "Item", "SourceError", "ingest_file", "read_items"]

#: Ids looked up per query when checking which derived ids are stored already.
_LOOKUP_CHUNK = 500


class SourceError(Exception):
    """The file as a whole cannot be read as events (a JSON array with a syntax error)."""

    def __init__(self, pos: int, reason: str):
        super().__init__(reason)
        self.pos = pos
        self.reason = reason


@dataclass
class Item:
    pos: int  #: file line (NDJSON) or item number (JSON array), 1-based
    n: int  #: ordinal among the file's items (blank lines are not items)
    weight: int  #: progress units it accounts for
    body: bytes = b""  #: the event as sent (with its derived id, if any)
    derived_id: str | None = None
    error: str | None = None  #: why it is not an event we can send


class _Chain:
    """Derived ids: a hash chained over the tenant and every item so far (module doc)."""

    def __init__(self, tenant: str):
        self.h = hashlib.sha256(b"auditstream ingest\0" + tenant.encode()).digest()

    def next(self, data: bytes) -> str:
        self.h = hashlib.sha256(self.h + data).digest()
        return "evt_" + self.h.hex()[:32]


def _item(pos: int, n: int, weight: int, value: object, chain: _Chain) -> Item:
    try:
        derived = chain.next(orjson.dumps(value))
        if isinstance(value, dict) and value.get("id") is None:
            value = {"id": derived, **{k: v for k, v in value.items() if k != "id"}}
            return Item(pos, n, weight, orjson.dumps(value), derived)
        # Not an object (the server names what is wrong), or an id of its own.
        return Item(pos, n, weight, orjson.dumps(value))
    except orjson.JSONEncodeError as exc:
        return Item(pos, n, weight, error=f"cannot be stored as JSON: {exc}")


def is_array_file(path: Path) -> bool:
    """A JSON array file starts with ``[``; anything else is read as NDJSON."""
    with open(path, "rb") as f:
        while chunk := f.read(4096):
            head = chunk.lstrip()
            if head:
                return head[:1] == b"["
    return False


def read_items(path: Path, tenant: str) -> tuple[str, int, Iterator[Item]]:
    """(unit, progress total, items) of an NDJSON file or a JSON array file.

    NDJSON is read line by line (memory stays bounded whatever the file's size); a JSON
    array is one document, read whole, and a syntax error in it raises ``SourceError``.
    """
    chain = _Chain(tenant)
    if is_array_file(path):
        try:
            doc = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise SourceError(exc.lineno, f"invalid JSON at column {exc.colno}: {exc.msg} "
                              "(a JSON array is read whole, so nothing was stored)") from None
        values = doc if isinstance(doc, list) else [doc]
        return "item", len(values), (
            _item(i, i, 1, v, chain) for i, v in enumerate(values, 1))

    def lines() -> Iterator[Item]:
        n = weight = 0
        with open(path, "rb") as f:
            for pos, raw in enumerate(f, 1):
                weight += len(raw)
                if not raw.strip():
                    continue
                n += 1
                try:
                    value = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    yield Item(pos, n, weight,
                               error=f"invalid JSON at column {exc.colno}: {exc.msg}")
                else:
                    yield _item(pos, n, weight, value, chain)
                weight = 0

    return "line", path.stat().st_size, lines()


@dataclass
class IngestReport:
    unit: str
    new: list[Item] = field(default_factory=list)
    present: list[Item] = field(default_factory=list)
    #: (position or None for the whole batch, reason), in file order.
    reasons: list[tuple[int | None, str]] = field(default_factory=list)
    refused: list[Item] = field(default_factory=list)  #: the batch that failed

    @property
    def ok(self) -> bool:
        return not self.reasons

    def positions(self, items: list[Item]) -> str:
        """`` (lines 1–2000, 2400)``: ranges of consecutive items, by file position."""
        if not items:
            return ""
        items = sorted(items, key=lambda i: i.n)
        runs: list[list[Item]] = [[items[0]]]
        for it in items[1:]:
            if it.n == runs[-1][-1].n + 1:
                runs[-1].append(it)
            else:
                runs.append([it])
        parts = [f"{r[0].pos}–{r[-1].pos}" if len(r) > 1 else f"{r[0].pos}" for r in runs[:5]]
        more = ", …" if len(runs) > 5 else ""
        plural = "s" if len(items) > 1 else ""
        return f" ({self.unit}{plural} {', '.join(parts)}{more})"

    def summary(self) -> str:
        return (f"stored {len(self.new)} new{self.positions(self.new)}, "
                f"{len(self.present)} already present{self.positions(self.present)}")

    def failure(self) -> list[str]:
        """The lines that explain a failure: where, why, and what to do."""
        first_pos, first = self.reasons[0]
        batch = self.positions(self.refused).strip(" ()")
        at = f"{self.unit} {first_pos}" if first_pos is not None else batch
        out = [f"failed at {at}: {first}"]
        out += [f"  {self.unit} {p}: {r}" if p is not None else f"  {r}"
                for p, r in self.reasons[1:21]]
        if len(self.reasons) > 21:
            out.append(f"  … and {len(self.reasons) - 21} more")
        out.append(f"not stored: {batch} (one batch, all or nothing) nor anything after; "
                   f"fix {at} and run the same command again: what is already stored is "
                   "recognised, not stored twice")
        return out


async def _stored_ids(svc: Services, tenant: str, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = tuple(ids[start:start + _LOOKUP_CHUNK])
        page = await svc.store.query(tenant, EventQuery(filter=Eq("id", chunk),
                                                        limit=len(chunk)))
        found.update(ev["id"] for ev in page.events)
    return found


async def _commit(svc: Services, tenant: str, batch: list[Item], report: IngestReport) -> bool:
    """Send one batch; record what happened to each item. False when the batch failed."""
    bad: list[tuple[int | None, str]] = [
        (i.pos, i.error) for i in batch if i.error is not None]
    if bad:
        report.reasons, report.refused = bad, batch
        return False
    # A derived id names the item's exact content and everything before it, so its
    # presence alone means "stored": no content comparison, which a re-sent event without
    # a timestamp would fail (the store stamps the time of receipt).
    stored = await _stored_ids(svc, tenant, [i.derived_id for i in batch if i.derived_id])
    send = [i for i in batch if i.derived_id not in stored]
    report.present += [i for i in batch if i.derived_id in stored]
    if not send:
        return True
    body = b"[" + b",".join(i.body for i in send) + b"]"
    try:
        results = await svc.ingestor.ingest(tenant, body, "application/json")
    except ProblemError as exc:
        located = [(send[e["index"]].pos, f"field {e.get('field')}: {e.get('reason')}")
                   for e in exc.errors
                   if isinstance(e.get("index"), int) and 0 <= e["index"] < len(send)]
        report.reasons = sorted(located) or [(None, exc.detail)]
        report.refused = batch
        return False
    except StoreError as exc:
        report.reasons, report.refused = [(None, f"the store failed: {exc}")], batch
        return False
    for item, appended in zip(send, results, strict=True):
        (report.new if appended.created else report.present).append(item)
    return True


async def ingest_file(
    svc: Services,
    tenant: str,
    unit: str,
    items: Iterator[Item],
    *,
    batch: int,
    max_bytes: int,
    advance: Callable[[int], None] | None = None,
) -> IngestReport:
    """Append ``items`` to ``tenant`` in all-or-nothing batches; stop at the first failure."""
    report = IngestReport(unit)
    pending: list[Item] = []
    size = 2  # the brackets of the JSON array sent

    async def flush() -> bool:
        ok = await _commit(svc, tenant, pending, report)
        if ok and advance:
            advance(sum(i.weight for i in pending))
        return ok

    for item in items:
        n = len(item.body) + 1
        if pending and (len(pending) >= batch or size + n > max_bytes):
            if not await flush():
                return report
            pending, size = [], 2
        pending.append(item)
        size += n
    if pending:
        await flush()
    return report
