"""Offline verification of an auditstream export bundle with nothing but the public key.

Deliberately self-contained: it imports no other auditstream module (only the standard
library, ``cryptography`` for Ed25519 and ``rfc8785`` for canonical JSON), so a bug in the
server's hashing, proof or signing code cannot also hide in the check. It re-implements
RFC 9162 inclusion verification (§2.1.3.2), the C2SP signed-note format and the check of
redaction records; copy this file to verify bundles anywhere.

Redacted events keep only some fields and ``redacted: {"at", "reason", "by"}``; their line
carries the original ``leaf_hash``. A stub is accepted only if the redaction record at seq
``by`` (an event of type ``auditstream.redaction``, proven like any other) commits to it:
its ``payload.redaction`` holds ``count`` and ``digest``, the SHA-256 over, for each stub
naming it in seq order, the seq (8 bytes, big-endian), the leaf hash and the SHA-256 of the
stub's RFC 8785 bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SIG_PREFIX = "\u2014 "  # em dash + space starts every signature line


@dataclass
class BundleReport:
    events: int = 0
    redacted: int = 0
    tree_size: int = 0
    origin: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _parse_vkey(vkey: str) -> tuple[str, bytes, bytes]:
    name, kid_hex, b64 = vkey.strip().split("+", 2)
    raw = base64.b64decode(b64, validate=True)
    if len(raw) != 33 or raw[0] != 1:
        raise ValueError("not an Ed25519 verifier key")
    pub = raw[1:]
    kid = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if kid.hex() != kid_hex:
        raise ValueError("verifier key id does not match the key")
    return name, kid, pub


def open_checkpoint(note: str, vkey: str) -> tuple[str, int, bytes]:
    """Check the note's signature by ``vkey``; return (origin, size, root)."""
    name, kid, pub = _parse_vkey(vkey)
    body, sep, sigs = note.rpartition("\n\n")
    if not sep:
        raise ValueError("checkpoint note has no signature block")
    body += "\n"
    key = Ed25519PublicKey.from_public_bytes(pub)
    good = False
    for line in sigs.splitlines():
        if not line.startswith(SIG_PREFIX):
            raise ValueError("malformed signature line")
        sig_name, _, b64 = line[len(SIG_PREFIX):].partition(" ")
        blob = base64.b64decode(b64, validate=True)
        if sig_name != name or blob[:4] != kid:
            continue  # someone else's signature (a witness, say)
        try:
            key.verify(blob[4:], body.encode())
        except InvalidSignature:
            raise ValueError("checkpoint signature is invalid") from None
        good = True
    if not good:
        raise ValueError("checkpoint is not signed by this key")
    lines = body.split("\n")
    return lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2, step by step."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def _strict_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # JSON parsers disagree on duplicate keys (first wins or last wins): a line another
    # reader would see differently is refused, not interpreted.
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return doc


def _loads(raw: bytes | str) -> Any:
    return json.loads(raw, object_pairs_hook=_strict_object)


def verify_bundle(lines: Iterable[bytes | str], vkey: str) -> BundleReport:
    report = BundleReport()
    it = iter(lines)
    try:
        header = _loads(next(it))
        origin, size, root = open_checkpoint(header["checkpoint"], vkey)
    except (StopIteration, ValueError, KeyError, TypeError) as exc:
        report.errors.append(f"bundle header: {exc}")
        return report
    report.origin, report.tree_size = origin, size
    tenant = header.get("tenant")
    if not origin.endswith(f"/{tenant}"):
        report.errors.append(f"checkpoint origin {origin!r} is not the log of {tenant!r}")
    expected = 0
    claims: dict[int, tuple[hashlib._Hash, int, int]] = {}  # by → (digest, count, first seq)
    for raw in it:
        if not raw.strip():
            continue
        try:
            item = _loads(raw)
            ev, index = item["event"], int(item["leaf_index"])
            path = [base64.b64decode(h, validate=True) for h in item["inclusion_path"]]
            if "redacted" in ev:
                leaf = base64.b64decode(item["leaf_hash"], validate=True)
                report.redacted += 1
            else:
                leaf = hashlib.sha256(b"\x00" + rfc8785.dumps(ev)).digest()
        except (ValueError, KeyError, TypeError) as exc:
            report.errors.append(f"event line {expected + 1}: malformed ({exc})")
            return report
        where = f"seq {ev.get('seq')}"
        if index != expected or ev.get("seq") != index + 1 or ev.get("tenant") != tenant:
            report.errors.append(f"{where}: out of order or foreign (expected seq {expected + 1})")
            return report
        if not verify_inclusion(leaf, index, size, path, root):
            report.errors.append(f"{where}: not included in the signed checkpoint "
                                 "(content altered or proof forged)")
            return report
        problem = _redaction_problem(ev, leaf, claims)
        if problem:
            report.errors.append(f"{where}: {problem}")
            return report
        expected += 1
        report.events += 1
    if expected != size:
        report.errors.append(f"bundle holds {expected} events but the checkpoint signs {size}")
    elif claims:
        by = min(claims)
        report.errors.append(f"seq {claims[by][2]}: redacted, but seq {by} is not a "
                             "redaction record")
    return report


def _redaction_problem(ev: dict, leaf: bytes,  # type: ignore[type-arg]
                       claims: dict[int, tuple[hashlib._Hash, int, int]]) -> str | None:
    seq = ev["seq"]
    if "redacted" in ev:
        by = ev["redacted"].get("by") if isinstance(ev["redacted"], dict) else None
        if type(by) is not int or by <= seq:
            return "redacted, but no redaction record names it"
        h, count, first = claims.get(by) or (hashlib.sha256(), 0, seq)
        h.update(seq.to_bytes(8, "big") + leaf + hashlib.sha256(rfc8785.dumps(ev)).digest())
        claims[by] = (h, count + 1, first)
        return None
    got = claims.pop(seq, None)
    if ev.get("type") != "auditstream.redaction":
        return None if got is None else f"seq {got[2]} names it as its redaction record"
    detail = (ev.get("payload") or {}).get("redaction") or {}
    h, count, first = got or (hashlib.sha256(), 0, seq)
    if detail.get("count") != count or detail.get("digest") != h.hexdigest():
        return f"redaction record does not match the stubs that name it (from seq {first})"
    return None
