"""The ClickHouse connection: ``AUDITSTREAM_CLICKHOUSE_URL`` to a pool of clients, and the
schema ``auditstream migrate`` creates.

Two kinds of URL, both through clickhouse-connect:

* ``http(s)://user:password@host:port/database``: a ClickHouse server or cluster;
* ``chdb:///path``: embedded ClickHouse (chdb) keeping its data in ``path``. chdb runs one
  engine per process, on one path: every client of this process shares it, and no other
  process may open the same path while this one has it.

clickhouse-connect (and chdb with it, ~hundreds of MB mapped) is imported here only, when a
ClickHouse store is opened: a SQLite deployment never loads it.
"""

from __future__ import annotations

import hashlib
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from ...errors import StoreUnavailable
from ...query.filter import is_valid_path
from . import rollup
from .compile import json_args

T = TypeVar("T")

DEFAULT_DATABASE = "auditstream"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

#: The event index: one row per event version (a redaction adds the stub as a later
#: version). ReplacingMergeTree keeps the highest ``ver`` of each (tenant, ts, seq); every
#: read says FINAL, so a duplicate from an at-least-once retry and the content a stub
#: replaced are never seen, merged away or not. ``ts`` of an event never changes, so the
#: sort key names one event exactly as (tenant, seq) does.
EVENTS = """
CREATE TABLE IF NOT EXISTS {db}.events (
    tenant LowCardinality(String),
    seq UInt64,
    ts Int64,
    received Int64,
    ver UInt64,
    id String,
    type LowCardinality(String),
    category LowCardinality(Nullable(String)),
    sev UInt8,
    outcome LowCardinality(Nullable(String)),
    body String CODEC(ZSTD(1)),
    words String CODEC(ZSTD(1)),
    INDEX seq_minmax seq TYPE minmax GRANULARITY 1,
    INDEX id_bloom id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX words_tokens words TYPE tokenbf_v1(8192, 3, 0) GRANULARITY 1
) ENGINE = ReplacingMergeTree(ver)
PARTITION BY toYYYYMM(toDateTime(greatest(0, least(intDiv(ts, 1000000), 4102444800)), 'UTC'))
ORDER BY (tenant, ts, seq)
"""

#: A declared path's string value (``AUDITSTREAM_INDEXED_PATHS``) as a column: equality
#: filters on it read one small column instead of parsing every candidate body (a page
#: filtered by ``subject.ecosystem`` at 2M events: ~33 ms → ~18 ms). NULL where the value
#: is not a JSON string, as ``compile`` reads it. The transfer sends the values it already
#: parsed (``transfer.index_row``): ClickHouse computing 11 of them from the body doubled
#: the insert's cost (21 → 40 µs per row). The expression is the column's DEFAULT, for rows
#: inserted without it (another node's paths) and parts from before the column, and what
#: ``verify`` checks every row against. The path is the column's comment (names are made
#: safe, and two paths may make one).
PATH_COLUMN = """
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS {col} Nullable(String)
DEFAULT {expr} COMMENT {comment}
"""
#: A column made by the first version (MATERIALIZED: inserts could not give its value).
PATH_COLUMN_DEFAULT = """
ALTER TABLE {db}.events MODIFY COLUMN {col} Nullable(String) DEFAULT {expr} COMMENT {comment}
"""


def path_column(path: str) -> str:
    """``subject.ecosystem`` → ``p_subject_ecosystem_<8 hex>`` (unique per path)."""
    digest = hashlib.sha256(path.encode()).hexdigest()[:8]
    return f"p_{re.sub(r'[^A-Za-z0-9_]', '_', path)}_{digest}"


def path_expr(path: str) -> str:
    """The string at ``path`` of ``body``, NULL unless it is a JSON string (segments are
    letters, digits, ``_`` and ``-``: ``filter.is_valid_path``)."""
    args = json_args(path)
    return f"if(JSONType({args}) = 'String', JSONExtractString({args}), NULL)"


def path_columns(c: Any, db: str) -> dict[str, str]:
    """path → column of the path columns ``events`` has (``PATH_COLUMN``)."""
    return {path: name for name, path, _ in _path_column_rows(c, db)}


def _path_column_rows(c: Any, db: str) -> list[tuple[str, str, str]]:
    """(column, path, default kind) of each path column ``events`` has."""
    rows = c.query("SELECT name, comment, default_kind FROM system.columns WHERE database = "
                   "{d:String} AND table = 'events' AND default_kind IN ('DEFAULT', "
                   "'MATERIALIZED')", parameters={"d": db}).result_rows
    return [(name, path, kind) for name, path, kind in rows
            if is_valid_path(path) and name == path_column(path)]


#: Each tenant's visibility watermark: readers see seqs up to it and no further. It only
#: moves after every row up to it is in ``events`` (max() reads it without FINAL).
WATERMARKS = """
CREATE TABLE IF NOT EXISTS {db}.watermarks (
    tenant String,
    seq UInt64
) ENGINE = ReplacingMergeTree(seq)
ORDER BY tenant
"""

#: Settings of every read: FINAL never needs to merge across months (a row and its
#: versions share a partition).
READ_SETTINGS = {"do_not_merge_across_partitions_select_final": 1}
#: Settings of every insert: one block may span any number of months (a backfill).
INSERT_SETTINGS = {"max_partitions_per_insert_block": 0}


def database_of(url: str) -> str:
    """The database a URL names: the path of an http(s) URL, ``?database=`` of a chdb one
    (several stores of one process share its one chdb engine, each in its own database)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "chdb"):
        raise ValueError("AUDITSTREAM_CLICKHOUSE_URL must be http(s)://user:password@host:"
                         f"port/database or chdb:///path, got {parts.scheme or 'no'} scheme")
    if parts.scheme == "chdb":
        name = parse_qs(parts.query).get("database", [""])[0]
    else:
        name = unquote(parts.path.strip("/"))
    name = name or DEFAULT_DATABASE
    if not _NAME.match(name):
        raise ValueError(f"AUDITSTREAM_CLICKHOUSE_URL: database name {name!r} must be letters, "
                         "digits and '_'")
    return name


def _client(url: str) -> Any:
    try:
        import clickhouse_connect
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise StoreUnavailable(f"clickhouse-connect is not installed: {exc}") from None
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        return clickhouse_connect.get_client(dsn=urlunsplit(parts._replace(query="")))
    if parts.scheme not in ("http", "https"):
        raise ValueError("AUDITSTREAM_CLICKHOUSE_URL must be http(s)://user:password@host:port"
                         f"/database or chdb:///path, got scheme {parts.scheme!r}")
    return clickhouse_connect.get_client(
        host=parts.hostname or "localhost", port=parts.port or (8443 if parts.scheme == "https"
                                                                else 8123),
        username=unquote(parts.username or "default"), password=unquote(parts.password or ""),
        secure=parts.scheme == "https")


class Engine:
    """A pool of clients over one ClickHouse (one thread per client at a time)."""

    def __init__(self, url: str, *, clients: int = 4):
        self.url = url
        self.db = database_of(url)
        self.embedded = url.startswith("chdb:")
        self._pool: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        from clickhouse_connect.driver.exceptions import OperationalError

        for _ in range(max(1, clients)):
            try:
                c = _client(url)
            except OperationalError as exc:
                self.close()
                raise StoreUnavailable(f"the ClickHouse index cannot be reached: {exc}"
                                       ) from exc
            self._all.append(c)
            self._pool.put(c)

    @contextmanager
    def client(self) -> Iterator[Any]:
        c = self._pool.get()
        try:
            yield c
        finally:
            self._pool.put(c)

    def run(self, fn: Callable[[Any], T]) -> T:
        """``fn(client)``; a ClickHouse that cannot be reached is ``StoreUnavailable`` (503
        with Retry-After), not a 500: reads come back when it does."""
        from clickhouse_connect.driver.exceptions import OperationalError

        with self.client() as c:
            try:
                return fn(c)
            except OperationalError as exc:
                raise StoreUnavailable(f"the ClickHouse index cannot be reached: {exc}"
                                       ) from exc

    def migrate(self, block: int = rollup.BLOCK, paths: Iterable[str] = ()) -> None:
        """Create the database and its tables (``auditstream migrate``; every open does),
        a column for each declared path, and count an index that has no hourly counts yet
        (``rollup.backfill``). Columns are only added: another node may declare others."""
        with self.client() as c:
            c.command(f"CREATE DATABASE IF NOT EXISTS {self.db}")
            c.command(EVENTS.format(db=self.db))
            for path in paths:
                if not is_valid_path(path):
                    raise ValueError(f"indexed path {path!r} is not a dotted path")
                c.command(PATH_COLUMN.format(db=self.db, col=path_column(path),
                                             expr=path_expr(path), comment=f"'{path}'"))
            for col, path, kind in _path_column_rows(c, self.db):
                if kind == "MATERIALIZED":
                    c.command(PATH_COLUMN_DEFAULT.format(db=self.db, col=col,
                                                         expr=path_expr(path),
                                                         comment=f"'{path}'"))
            c.command(WATERMARKS.format(db=self.db))
            rollup.migrate(c, self.db, block)

    def fsync_inserts(self) -> None:
        """Make ``events`` fsync each insert's part and its directory before the insert
        returns (ClickHouse does not by default): for a log that drops the bodies the
        index holds. A cluster adds replication (``insert_quorum``) on top."""
        with self.client() as c:
            c.command(f"ALTER TABLE {self.db}.events MODIFY SETTING fsync_after_insert = 1, "
                      "fsync_part_directory = 1")

    def path_columns(self) -> dict[str, str]:
        with self.client() as c:
            return path_columns(c, self.db)

    def close(self) -> None:
        with self._lock:
            clients, self._all = self._all, []
        for c in clients:
            c.close()


__all__ = ["DEFAULT_DATABASE", "Engine", "database_of", "path_column", "path_columns",
           "path_expr"]
