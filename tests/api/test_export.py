"""``GET /v1/events/export``: content of all three formats, filters, resumption, safety.

The 1,000,000-event memory test runs ``bench/export_memory.py`` and is skipped unless
``AUDITSTREAM_SLOW=1`` (it takes minutes).
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from auditstream.export import COLUMNS, CsvEncoder, ParquetEncoder, escape_cell

ROOT = Path(__file__).resolve().parents[2]
N = 5000
NASTY = ["=HYPERLINK(\"http://evil\",\"x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
         "\tTAB", "\rCR", "plain, with \"quotes\"\nand a newline", "ünïcödé ✓"]


def make_events(n: int, start: int = 0) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + n):
        ev: dict[str, Any] = {
            "type": "user.login" if i % 3 else "secret.read",
            "timestamp": f"2026-03-{1 + i % 28:02d}T{i % 24:02d}:00:{i % 60:02d}Z",
            "severity": ("info", "low", "high")[i % 3],
            "outcome": "success",
            "title": NASTY[i % len(NASTY)] if i % 10 == 0 else f"event {i}",
            "description": f"row {i}",
            "actor": {"type": "user", "id": f"u{i % 50}", "name": NASTY[i % len(NASTY)]},
            "subject": {"type": "host", "id": f"h{i % 7}"},
            "source": {"ip": f"10.0.{i % 256}.{i % 200}"},
            "tags": ["a"] if i % 2 else [],
        }
        out.append(ev)
    return out


def ingest(client: Any, events: list[dict[str, Any]]) -> None:
    for s in range(0, len(events), 1000):
        r = client.post("/v1/events", content=orjson.dumps(events[s:s + 1000]),
                        headers={"content-type": "application/json"})
        assert r.status_code == 201, r.text


@pytest.fixture
def loaded(server: Any) -> tuple[Any, Any, list[dict[str, Any]]]:
    client = server.client(server.key("acme"))
    events = make_events(N)
    ingest(client, events)
    return server, client, events


def get_export(client: Any, **params: Any) -> Any:
    r = client.get("/v1/events/export", params=params)
    assert r.status_code == 200, r.text
    return r


def test_ndjson_every_event_once_in_seq_order(loaded: Any) -> None:
    _server, client, events = loaded
    r = get_export(client)
    assert r.headers["content-type"].startswith("application/x-ndjson")
    disp = r.headers["content-disposition"]
    assert disp.startswith('attachment; filename="auditstream-acme-') and disp.endswith('.ndjson"')
    assert r.headers["auditstream-last-seq"] == str(N)
    assert r.content.endswith(b"\n")
    rows = [orjson.loads(line) for line in r.content.splitlines()]
    assert [e["seq"] for e in rows] == list(range(1, N + 1))
    assert [e["title"] for e in rows] == [e["title"] for e in events]  # stored, unescaped
    assert {e["tenant"] for e in rows} == {"acme"}
    # The same events as the paged list API returns.
    one = client.get(f"/v1/events/{rows[17]['id']}").json()
    assert one == rows[17]


def test_ndjson_lines_are_the_stored_signed_bytes(loaded: Any) -> None:
    """A line of the export is the event's stored JSON as is, not a re-serialisation: it
    hashes to the leaf the event's inclusion proof names, so each line can be checked."""
    import base64

    from auditstream.integrity.merkle import leaf_hash

    _server, client, _events = loaded
    lines = get_export(client, limit=40).content.splitlines()
    for line in (lines[0], lines[9], lines[39]):  # with NASTY titles (every tenth event)
        event_id = orjson.loads(line)["id"]
        assert client.get(f"/v1/events/{event_id}").content == line
        proof = client.get(f"/v1/events/{event_id}", params={"include": "proof"}).json()
        assert base64.b64decode(proof["proof"]["leaf_hash"]) == leaf_hash(line)


def test_csv_columns_content_and_formula_escaping(loaded: Any) -> None:
    _server, client, _events = loaded
    ndjson = [orjson.loads(x) for x in get_export(client).content.splitlines()]
    r = get_export(client, format="csv")
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"].endswith('.csv"')
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8"), newline="")))
    assert tuple(rows[0]) == COLUMNS
    body = [dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]]
    assert len(body) == N
    for row, ev in zip(body, ndjson, strict=True):
        assert orjson.loads(row["event_json"]) == ev
        assert row["seq"] == str(ev["seq"])
        assert row["timestamp"] == ev["timestamp"]
        assert row["actor_id"] == ev["actor"]["id"]
        assert row["subject_id"] == ev["subject"]["id"]
        assert row["source_ip"] == ev["source"]["ip"]
        for col, value in (("title", ev["title"]), ("actor_name", ev["actor"]["name"])):
            if value[0] in "=+-@\t\r":
                assert row[col] == "'" + value, col
            else:
                assert row[col] == value, col
    # Every dangerous first character was seen, escaped, at least once.
    firsts = {row["actor_name"][:2] for row in body}
    for prefix in ("'=", "'+", "'-", "'@", "'\t", "'\r"):
        assert prefix in firsts
    assert not any(row[c][:1] in ("=", "+", "-", "@", "\t", "\r")
                   for row in body for c in COLUMNS if c != "event_json")


def test_parquet_schema_and_content(loaded: Any) -> None:
    _server, client, _events = loaded
    ndjson = [orjson.loads(x) for x in get_export(client).content.splitlines()]
    r = get_export(client, format="parquet")
    assert r.headers["content-type"] == "application/vnd.apache.parquet"
    assert r.headers["content-disposition"].endswith('.parquet"')
    table = pq.read_table(pa.BufferReader(r.content))
    assert tuple(table.schema.names) == COLUMNS
    assert table.schema.field("seq").type == pa.int64()
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.num_rows == N
    data = table.to_pydict()
    assert data["seq"] == list(range(1, N + 1))
    assert [orjson.loads(x) for x in data["event_json"]] == ndjson
    assert data["title"][0] == ndjson[0]["title"]  # typed data: no spreadsheet escaping
    first_ts = data["timestamp"][0]
    assert first_ts.strftime("%Y-%m-%dT%H:%M:%SZ") == ndjson[0]["timestamp"]


def test_filters_after_seq_and_limit(loaded: Any) -> None:
    _server, client, events = loaded
    r = get_export(client, type="secret.read", since="2026-03-10", until="2026-03-20")
    rows = [orjson.loads(x) for x in r.content.splitlines()]
    expected = [i + 1 for i, e in enumerate(events) if e["type"] == "secret.read"
                and "2026-03-10" <= e["timestamp"] < "2026-03-20"]
    assert [e["seq"] for e in rows] == expected
    r = get_export(client, q="severity:high actor.id:u3")
    assert all(e["severity"] == "high" and e["actor"]["id"] == "u3"
               for e in map(orjson.loads, r.content.splitlines()))
    # Resumption: after_seq + limit walk the stream in pieces, each event exactly once.
    seen: list[int] = []
    after = 0
    while True:
        part = [orjson.loads(x) for x in
                get_export(client, after_seq=after, limit=1777).content.splitlines()]
        seen += [e["seq"] for e in part]
        if len(part) < 1777:
            break
        after = part[-1]["seq"]
    assert seen == list(range(1, N + 1))
    csv_rows = get_export(client, format="csv", limit=3).content.decode().splitlines()
    assert len(csv_rows) == 4  # header + 3


def test_bad_requests_are_problems_not_truncated_bodies(loaded: Any) -> None:
    server, client, _ = loaded
    for params in ({"format": "xml"}, {"after_seq": "-1"}, {"limit": "0"},
                   {"nonsense": "1"}, {"since": "not a time"}, {"order": "asc"}):
        r = client.get("/v1/events/export", params=params)
        assert r.status_code == 400, params
        assert r.headers["content-type"] == "application/problem+json"
    assert server.client().get("/v1/events/export").status_code == 401
    write_only = server.client(server.key("acme", "events:write"))
    assert write_only.get("/v1/events/export").status_code == 403


def test_tenants_are_isolated_and_empty_exports_are_valid(loaded: Any) -> None:
    server, _client, _ = loaded
    other = server.client(server.key("other"))
    assert other.get("/v1/events/export").content == b""
    r = other.get("/v1/events/export", params={"format": "csv"})
    assert r.content.decode().splitlines() == [",".join(COLUMNS)]
    table = pq.read_table(pa.BufferReader(
        other.get("/v1/events/export", params={"format": "parquet"}).content))
    assert table.num_rows == 0 and tuple(table.schema.names) == COLUMNS


def test_escape_cell_rule() -> None:
    for bad in ("=1", "+1", "-1", "@a", "\tx", "\rx"):
        assert escape_cell(bad) == "'" + bad
    for ok in ("", "a=b", " =x", "'=x", "1-2", "{}"):
        assert escape_cell(ok) == ok


def test_encoders_emit_row_groups_as_they_fill() -> None:
    enc = ParquetEncoder(row_group_size=1000)
    events = [{"id": f"e{i}", "seq": i + 1, "timestamp": "2026-01-01T00:00:00Z",
               "type": "t", "actor": {"id": 7}} for i in range(4500)]
    chunks = [enc.start()]
    for s in range(0, 4500, 500):
        chunks.append(enc.encode(events[s:s + 500]))
    # A row group leaves the encoder as soon as it is full: nothing is held back.
    assert sum(1 for c in chunks if c) >= 4
    chunks.append(enc.finish())
    pf = pq.ParquetFile(pa.BufferReader(b"".join(chunks)))
    assert pf.metadata.num_row_groups == 5
    assert pf.read().column("actor_id").to_pylist()[:2] == ["7", "7"]  # numbers as text
    csv_enc = CsvEncoder()
    text = (csv_enc.start() + csv_enc.encode(events[:2]) + csv_enc.finish()).decode()
    assert text.count("\r\n") == 3


@pytest.mark.skipif(not os.environ.get("AUDITSTREAM_SLOW"),
                    reason="slow: set AUDITSTREAM_SLOW=1 to export 1,000,000 events")
def test_export_memory_is_constant_at_one_million(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "export_memory.py"), "--events", "1000000",
         "--dir", str(tmp_path), "--formats", "ndjson,parquet", "--control", "0",
         "--parallel", "3"],
        capture_output=True, check=True, timeout=3600, cwd=ROOT,
    )
    doc = orjson.loads(out.stdout.splitlines()[-1])
    assert doc["events"] == 1_000_000
    for run in doc["exports"]:
        curve = run["rss_by_progress_mb"]
        # Constant memory: the second half of the export (500,000 events, hundreds of MB
        # of output) adds nothing beyond noise. The rise in the first part is SQLite's
        # page cache filling up (64 MiB per reader connection, 4 by default), a fixed
        # ceiling, plus one batch or row group.
        assert curve["100%"] - curve["50%"] < 32, run
        assert run["rss_peak_mb"] - run["rss_before_mb"] < 4 * 64 + 128, run
    ndjson = doc["exports"][0]
    assert ndjson["lines"] == 1_000_000
    assert ndjson["export_bytes"] > 300 * 1024 * 1024
