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


def test_bundle_verifier_accepts_float_seq(bundle: tuple[list[bytes], Signer]) -> None:
    """OBSERVATION: ``"seq": 3.0`` passes (3.0 == 3, and RFC 8785 prints it as 3); harmless
    for the hash, but the accepted bytes are not the exported ones."""
    lines, signer = bundle
    lines = list(lines)
    lines[3] = lines[3].replace(b'"seq":3,', b'"seq":3.0,')
    assert b'"seq":3.0' in lines[3]
    assert verify_bundle(lines, signer.verifier_key()).ok


def test_bundle_file_roundtrip(tmp_path: Path, bundle: tuple[list[bytes], Signer]) -> None:
    lines, signer = bundle
    f = tmp_path / "b.ndjson"
    f.write_bytes(b"\n".join(lines) + b"\n")
    with f.open("rb") as fh:
        assert verify_bundle(fh, signer.verifier_key()).ok
