"""Serialisation of event exports: NDJSON, CSV and Parquet, batch by batch.

The HTTP export (``api/native/export.py``) and the ``auditstream export`` command share
these encoders, so a file made either way is byte-for-byte the same format.

Guarantees:

* **Streaming, bounded memory.** An encoder is fed batches of events (in ``seq`` order,
  as :func:`scan_batches` reads them) and returns the bytes ready to send after each
  batch. It never holds more than one batch (NDJSON, CSV) or one Parquet row group
  (``row_group_size`` rows or ``row_group_bytes`` of events, whichever comes first) at a
  time, whatever the size of the export.
* **Batches are counted in bytes.** :func:`scan_batches` sizes each read so that a batch
  holds about :data:`BATCH_BYTES` of event JSON: a thousand 100 KB events were 100 MB of
  JSON (and ~1 GB of Python objects and CSV text) in one batch, so memory grew with the
  events' size rather than staying constant.
* **Lossless.** NDJSON lines are the stored events. CSV and Parquet have fixed scalar
  columns (:data:`COLUMNS`) for spreadsheets and SQL engines, plus ``event_json``: the full
  event, so nothing that did not fit a column is lost.
* **Safe in spreadsheets.** Every CSV cell that begins with ``=``, ``+``, ``-``, ``@``, a
  tab or a carriage return gets a leading ``'`` (the OWASP CSV-injection rule), so a
  spreadsheet never evaluates event content as a formula. ``event_json`` always starts
  with ``{`` and is never altered. Parquet is typed data, not a spreadsheet: no escaping.
* **Schema is fixed.** The same columns in the same order, whatever the events hold,
  so consumers can rely on it across exports (an empty export still has the header or
  the Parquet schema).

Usage::

    enc = encoder("csv")
    out.write(enc.start())
    for batch in batches:
        out.write(enc.encode(batch))
    out.write(enc.finish())
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Literal

import orjson

from .model.times import format_us, now_us, parse_us

if TYPE_CHECKING:
    from .query.filter import Node
    from .store.base import EventStore

__all__ = [
    "BATCH_BYTES",
    "COLUMNS",
    "CsvEncoder",
    "Encoder",
    "FORMATS",
    "Format",
    "NdjsonEncoder",
    "ParquetEncoder",
    "encoder",
    "escape_cell",
    "export_filename",
    "flat_row",
    "scan_batches",
    "scan_raw_batches",
]

Format = Literal["ndjson", "csv", "parquet"]
FORMATS: tuple[Format, ...] = ("ndjson", "csv", "parquet")

#: Event JSON an export reads per batch: the unit of its memory (see
#: :func:`scan_raw_batches`).
BATCH_BYTES = 512 * 1024
#: Most events per batch, however small: a batch after light events holds at most this
#: many of whatever follows (a store read cannot be cut by bytes from here).
MAX_BATCH = 256

#: The fixed columns of CSV and Parquet exports, in order.
COLUMNS: tuple[str, ...] = (
    "id", "seq", "timestamp", "received_at", "type", "category", "severity", "outcome",
    "title", "description", "actor_id", "actor_name", "subject_type", "subject_id",
    "source_ip", "event_json",
)

#: Characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _scalar(value: Any) -> str | None:
    """A column value as text: strings as they are, numbers/bools in JSON spelling,
    objects and lists as compact JSON (they stay readable in full in ``event_json``)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _attr(event: dict[str, Any], obj: str, key: str) -> Any:
    parent = event.get(obj)
    return parent.get(key) if isinstance(parent, dict) else None


def flat_row(event: dict[str, Any]) -> dict[str, Any]:
    """The fixed columns of one event: text (or None), except ``seq`` (int or None).

    ``source_ip`` is ``source.ip``, else ``actor.ip`` (seeds put the caller's address in
    either place). ``event_json`` is the whole stored event, compact JSON.
    """
    seq = event.get("seq")
    ip = _attr(event, "source", "ip")
    if ip is None:
        ip = _attr(event, "actor", "ip")
    return {
        "id": _scalar(event.get("id")),
        "seq": seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        "timestamp": _scalar(event.get("timestamp")),
        "received_at": _scalar(event.get("received_at")),
        "type": _scalar(event.get("type")),
        "category": _scalar(event.get("category")),
        "severity": _scalar(event.get("severity")),
        "outcome": _scalar(event.get("outcome")),
        "title": _scalar(event.get("title")),
        "description": _scalar(event.get("description")),
        "actor_id": _scalar(_attr(event, "actor", "id")),
        "actor_name": _scalar(_attr(event, "actor", "name")),
        "subject_type": _scalar(_attr(event, "subject", "type")),
        "subject_id": _scalar(_attr(event, "subject", "id")),
        "source_ip": _scalar(ip),
        "event_json": orjson.dumps(event).decode(),
    }


def escape_cell(text: str) -> str:
    """Neutralise a CSV cell a spreadsheet would evaluate: prefix ``'`` (OWASP rule)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


class Encoder:
    """Turns batches of events into bytes of one export format (see the module docstring).

    ``start`` once, ``encode`` per batch, ``finish`` once; each returns the bytes to
    append to the output, possibly empty. An encoder is single-use and not thread-safe
    (it may be driven from a worker thread, one call at a time).
    """

    fmt: Format
    media_type: str
    extension: str

    def start(self) -> bytes:
        return b""

    def encode(self, events: list[dict[str, Any]]) -> bytes:
        raise NotImplementedError

    def encode_raw(self, events: list[bytes]) -> bytes:
        """``encode`` of events given as their stored JSON (:func:`scan_raw_batches`)."""
        return self.encode([orjson.loads(b) for b in events])

    def finish(self) -> bytes:
        return b""


class NdjsonEncoder(Encoder):
    """One stored event per line, compact JSON, ``\\n``-terminated (so a reader can tell a
    complete line from a cut one)."""

    fmt = "ndjson"
    media_type = "application/x-ndjson"
    extension = "ndjson"

    def encode(self, events: list[dict[str, Any]]) -> bytes:
        if not events:
            return b""
        return b"\n".join(orjson.dumps(e) for e in events) + b"\n"

    def encode_raw(self, events: list[bytes]) -> bytes:
        # The stored bytes as they are: compact JSON never holds a raw newline, and an
        # export of millions of events spends no time parsing and re-serialising them.
        return b"\n".join(events) + b"\n" if events else b""


class CsvEncoder(Encoder):
    """RFC 4180 CSV (``\\r\\n`` rows, quoting as needed), UTF-8, header row first,
    injection-safe cells (see :func:`escape_cell`)."""

    fmt = "csv"
    media_type = "text/csv; charset=utf-8"
    extension = "csv"

    def __init__(self) -> None:
        self._buf = io.StringIO()
        self._writer = csv.writer(self._buf, lineterminator="\r\n")

    def _take(self) -> bytes:
        out = self._buf.getvalue().encode("utf-8")
        self._buf.seek(0)
        self._buf.truncate()
        return out

    def start(self) -> bytes:
        self._writer.writerow(COLUMNS)
        return self._take()

    def encode(self, events: list[dict[str, Any]]) -> bytes:
        writerow = self._writer.writerow
        for ev in events:
            row = flat_row(ev)
            cells = []
            for col in COLUMNS:
                v = row[col]
                if v is None:
                    cells.append("")
                elif isinstance(v, str):
                    cells.append(v if col == "event_json" else escape_cell(v))
                else:
                    cells.append(str(v))
            writerow(cells)
        return self._take()


class _Drain(io.RawIOBase):
    """A write-only file that keeps what was written until ``take`` hands it out.

    ParquetWriter writes each row group (and finally the footer) into it; the exporter
    drains it after every write, so no more than one encoded row group is ever held.
    ``tell`` reports the total written, which the writer needs for its page offsets.
    """

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._chunks.append(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


class ParquetEncoder(Encoder):
    """Parquet with a fixed schema: ``seq`` int64, ``timestamp``/``received_at`` as
    timestamp[us, UTC], every other column a string; zstd-compressed row groups of
    ``row_group_size`` rows, each emitted as soon as it is full."""

    fmt = "parquet"
    media_type = "application/vnd.apache.parquet"
    extension = "parquet"

    def __init__(self, row_group_size: int = 10_000, compression: str = "zstd",
                 row_group_bytes: int = 16 * 1024 * 1024) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self.row_group_size = row_group_size
        #: A row group is also closed once its events' JSON reaches this many bytes.
        self.row_group_bytes = row_group_bytes
        self._bytes = 0
        ts = pa.timestamp("us", tz="UTC")
        self.schema = pa.schema([
            pa.field(c, pa.int64() if c == "seq" else ts if c in ("timestamp", "received_at")
                     else pa.string())
            for c in COLUMNS
        ])
        self._sink = _Drain()
        self._writer = pq.ParquetWriter(self._sink, self.schema, compression=compression)
        self._cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        self._rows = 0

    def _flush(self) -> bytes:
        if self._rows:
            table = self._pa.Table.from_pydict(self._cols, schema=self.schema)
            self._writer.write_table(table, row_group_size=self._rows)
            self._cols = {c: [] for c in COLUMNS}
            self._rows = 0
            self._bytes = 0
        return self._sink.take()

    def encode(self, events: list[dict[str, Any]]) -> bytes:
        cols = self._cols
        out = []
        for ev in events:
            row = flat_row(ev)
            for col in ("timestamp", "received_at"):
                row[col] = _time_us(row[col])
            for col in COLUMNS:
                cols[col].append(row[col])
            self._rows += 1
            self._bytes += len(row["event_json"])
            if self._rows >= self.row_group_size or self._bytes >= self.row_group_bytes:
                out.append(self._flush())
                cols = self._cols
        return b"".join(out)

    def finish(self) -> bytes:
        body = self._flush()
        self._writer.close()
        return body + self._sink.take()


async def scan_batches(
    store: EventStore, tenant: str, where: Node, *, after_seq: int = 0,
    limit: int | None = None, target_bytes: int = BATCH_BYTES,
) -> AsyncIterator[list[dict[str, Any]]]:
    """:func:`scan_raw_batches` with each event parsed."""
    async for raws in scan_raw_batches(store, tenant, where, after_seq=after_seq,
                                       limit=limit, target_bytes=target_bytes):
        yield [orjson.loads(b) for b in raws]


async def scan_raw_batches(
    store: EventStore, tenant: str, where: Node, *, after_seq: int = 0,
    limit: int | None = None, target_bytes: int = BATCH_BYTES,
) -> AsyncIterator[list[bytes]]:
    """Every matching event with ``seq > after_seq`` (at most ``limit``), in seq order, as
    its stored JSON, in batches of about ``target_bytes`` of it.

    ``EventStore.scan_raw`` counts its batches in events; this sizes each batch from the
    heaviest event of the last: starting at one event, at most doubling, at most
    :data:`MAX_BATCH`. So a batch of heavy events is a few events and a batch of light
    ones up to :data:`MAX_BATCH`; only right after lighter events can a batch exceed the
    target, and then by at most twice the last batch's count of heavy events. One scan
    serves as long as the size holds (a scan on ClickHouse costs a query to open); a new
    size opens a new scan after the last seq, so nothing is skipped or repeated.
    """
    last, remaining, size = after_seq, limit, 1
    reader: AsyncIterator[list[bytes]] | None = None
    open_size = 0
    try:
        while remaining is None or remaining > 0:
            want = size if remaining is None else min(size, remaining)
            if reader is None or want != open_size:
                if reader is not None:
                    await reader.aclose()  # type: ignore[attr-defined]
                reader, open_size = store.scan_raw(tenant, where, after_seq=last,
                                                   batch=want), want
            batch = await anext(reader, None)
            if not batch:
                return
            yield batch
            if len(batch) < want:
                return
            last = orjson.loads(batch[-1])["seq"]
            if remaining is not None:
                remaining -= len(batch)
            heaviest = max(len(b) for b in batch)
            size = max(1, min(MAX_BATCH, 2 * size, target_bytes // heaviest))
    finally:
        if reader is not None:
            await reader.aclose()  # type: ignore[attr-defined]


def _time_us(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_us(text)
    except ValueError:
        return None


_ENCODERS: dict[str, Callable[[], Encoder]] = {
    "ndjson": NdjsonEncoder, "csv": CsvEncoder, "parquet": ParquetEncoder,
}


def encoder(fmt: str) -> Encoder:
    """A fresh encoder for ``fmt`` (one of :data:`FORMATS`)."""
    try:
        return _ENCODERS[fmt]()
    except KeyError:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}"
                         ) from None


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def export_filename(tenant: str, fmt: str, at_us: int | None = None) -> str:
    """``auditstream-<tenant>-<UTC time>.<ext>``, safe in a Content-Disposition header
    and on every file system (anything outside ``[A-Za-z0-9_.-]`` becomes ``_``)."""
    stamp = format_us(now_us() if at_us is None else at_us)[:19].replace("-", "")
    stamp = stamp.replace(":", "") + "Z"
    safe = _UNSAFE_NAME.sub("_", tenant).strip("._") or "tenant"
    if fmt not in _ENCODERS:
        raise ValueError(f"unknown export format {fmt!r}")
    return f"auditstream-{safe}-{stamp}.{fmt}"
