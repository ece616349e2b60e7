"""Red-team attacks on export bundles and the offline verifier (src/auditstream/verifier.py).
See test_attack_verify_db.py."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import orjson
import pytest
from attack_harness import PATHS, build

from auditstream.dbapi import sqlite3
from auditstream.integrity.bundle import write_bundle
from auditstream.integrity.checkpoint import Signer
from auditstream.store.sqlite import SQLiteEventStore
from auditstream.verifier import verify_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], Signer]:
    db = tmp_path_factory.mktemp("bundle") / "b.db"
    signer = build(db)

    async def run() -> bytes:
        st = SQLiteEventStore(db, indexed_paths=PATHS)
        out = io.BytesIO()
        await write_bundle(st, "acme", out, signer.verifier())
        await st.close()
        return out.getvalue()

    lines = asyncio.run(run()).splitlines()
    assert verify_bundle(lines, signer.verifier_key()).ok
    return lines, signer


def test_bundle_line_with_a_duplicate_event_key(bundle: tuple[list[bytes], Signer]) -> None:
    lines, signer = bundle
    item = orjson.loads(lines[14])  # seq 14
    fake = dict(item["event"], actor={"id": "nobody"}, title="nothing happened")
    lines = list(lines)
    lines[14] = b'{"event":' + orjson.dumps(fake) + b"," + lines[14][1:]
    conn = sqlite3.connect(":memory:")
    seen = conn.execute("SELECT json_extract(?, '$.event.actor.id')",
                        (lines[14].decode(),)).fetchone()[0]
    assert seen == "nobody"
    assert not verify_bundle(lines, signer.verifier_key()).ok


@pytest.mark.parametrize("edit", ["content", "drop-line", "swap-lines", "stub-without-record",
                                  "record-digest"])
def test_bundle_forgeries_are_caught(bundle: tuple[list[bytes], Signer], edit: str) -> None:
    """HELD: edited content, a missing or reordered line, a live event turned into a stub
    carrying its true leaf hash, an edited record."""
    import base64

    from auditstream.integrity.canonical import canonical_bytes
    from auditstream.integrity.merkle import leaf_hash

    lines, signer = bundle
    lines = list(lines)
    if edit == "content":
        item = orjson.loads(lines[3])
        item["event"]["actor"]["id"] = "nobody"
        lines[3] = orjson.dumps(item)
    elif edit == "drop-line":
        del lines[3]
    elif edit == "swap-lines":
        lines[3], lines[4] = lines[4], lines[3]
    elif edit == "stub-without-record":
        item = orjson.loads(lines[3])
        leaf = leaf_hash(canonical_bytes(item["event"]))
        keep = {k: item["event"][k] for k in ("id", "tenant", "seq", "timestamp",
                                              "received_at", "type", "severity")}
        item["event"] = dict(keep, redacted={"at": keep["timestamp"], "reason": "x",
                                             "by": 21})
        item["leaf_hash"] = base64.b64encode(leaf).decode()
        lines[3] = orjson.dumps(item)
    else:
        item = orjson.loads(lines[21])  # the redaction record (seq 21)
        item["event"]["payload"]["redaction"]["reason"] = "routine"
        lines[21] = orjson.dumps(item)
    assert not verify_bundle(lines, signer.verifier_key()).ok


def _header(lines: list[bytes], **changes: object) -> bytes:
    return orjson.dumps({**orjson.loads(lines[0]), **changes})


def _event_line(line: bytes, **changes: object) -> bytes:
    return orjson.dumps({**orjson.loads(line), **changes})


#: Lines a reader of the file would take for something the signature does not say, and
#: lines that crashed the verifier. Each must be refused (a report, never an exception).
MISLEADING = {
    "float seq": lambda ls: {3: ls[3].replace(b'"seq":3,', b'"seq":3.0,')},
    # Reads as 1.0, which RFC 8785 prints (and the leaf hashes) as 1.
    "inexact number": lambda ls: {3: ls[3].replace(b'"cost_usd":1,',
                                                   b'"cost_usd":0.99999999999999999,')},
    "integral float leaf_index": lambda ls: {3: _event_line(ls[3], leaf_index=2.0)},
    "string leaf_index": lambda ls: {3: _event_line(ls[3], leaf_index="2")},
    "infinite leaf_index": lambda ls: {3: ls[3].replace(b'"leaf_index":2', b'"leaf_index":1e999')},
    "extra field on a line": lambda ls: {3: _event_line(ls[3], note="approved by the CFO")},
    "UTF-16 line": lambda ls: {3: ls[3].decode().encode("utf-16")},
    "nesting beyond the stack": lambda ls: {3: b"[" * 100_000},
    "header nesting beyond the stack": lambda ls: {0: b"[" * 100_000},
    "unsigned tree_size": lambda ls: {0: _header(ls, tree_size=99_999)},
    "unsigned origin": lambda ls: {0: _header(ls, origin="evil/acme")},
    "extra header field": lambda ls: {0: _header(ls, signed_by="KPMG")},
    "other format": lambda ls: {0: _header(ls, format="auditstream.bundle/v99")},
}


@pytest.mark.parametrize("attack", sorted(MISLEADING))
def test_bundle_lines_that_mislead_or_crash_are_refused(
    bundle: tuple[list[bytes], Signer], attack: str,
) -> None:
    lines, signer = bundle
    lines = list(lines)
    for i, line in MISLEADING[attack](lines).items():
        assert line != lines[i]
        lines[i] = line
    report = verify_bundle(lines, signer.verifier_key())
    assert not report.ok and report.errors


def test_a_bundle_of_an_empty_log_proves_nothing() -> None:
    """A size-0 checkpoint (any tenant without events has one, signed on demand) alone
    must not pass as a verified bundle, for the library and so for ``auditstream verify``."""
    from auditstream.integrity.checkpoint import format_checkpoint, generate_signer, sign_note
    from auditstream.integrity.merkle import EMPTY_ROOT

    signer = generate_signer("auditstream.local")
    note = sign_note(format_checkpoint("auditstream.local/empty", 0, EMPTY_ROOT), signer)
    header = orjson.dumps({"format": "auditstream.bundle/v1", "tenant": "empty",
                           "origin": "auditstream.local/empty", "tree_size": 0,
                           "checkpoint": note, "public_key": signer.verifier_key()})
    report = verify_bundle([header], signer.verifier_key())
    assert not report.ok and "proves no event" in report.errors[0]


def test_bundle_file_roundtrip(tmp_path: Path, bundle: tuple[list[bytes], Signer]) -> None:
    lines, signer = bundle
    f = tmp_path / "b.ndjson"
    f.write_bytes(b"\n".join(lines) + b"\n")
    with f.open("rb") as fh:
        assert verify_bundle(fh, signer.verifier_key()).ok


def test_a_bundle_of_floats_of_every_magnitude_verifies(tmp_path: Path) -> None:
    """The exact-number rule refuses no number an honest export writes (orjson prints each
    double in its shortest exact form), and a large integral double (1e17, which JCS prints
    as an integer beyond 2**53 - 1) is read back as the double it is."""
    from auditstream.integrity.checkpoint import generate_signer

    floats = [0.1, 1 / 3, 1e-7, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
              123.456, 1e17, 2.0**60, 1e21, 1e22, -2.5e-10, 0.30000000000000004]
    signer = generate_signer("auditstream.local")

    async def run() -> bytes:
        st = SQLiteEventStore(tmp_path / "f.db", signer=signer, indexed_paths=PATHS)
        await st.append("acme", [{"id": f"evt_{i}", "tenant": "acme", "type": "m",
                                  "timestamp": "2026-01-01T00:00:00Z",
                                  "received_at": "2026-01-01T00:00:00Z",
                                  "severity": "info", "context": {"x": x, "xs": [x, -x]}}
                                 for i, x in enumerate(floats)])
        out = io.BytesIO()
        await write_bundle(st, "acme", out, signer.verifier())
        await st.close()
        return out.getvalue()

    report = verify_bundle(asyncio.run(run()).splitlines(), signer.verifier_key())
    assert report.ok, report.errors
    assert report.events == len(floats)
