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

As a script (``pip install cryptography rfc8785`` is all it needs)::

    python verifier.py BUNDLE PUBLIC_KEY     # BUNDLE may be - (standard input)

PUBLIC_KEY is a file holding the key as served at ``GET /v1/integrity/public-key``. Exit
status: 0 when every event is proven (a one-line summary on stdout), 1 when verification
fails (each fault on stderr), 2 on a usage error: wrong arguments, an unreadable file, a key
file that holds no verifier key, or a bundle that is empty or not a bundle at all. A bundle
that proves no event is never reported as verified.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SIG_PREFIX = "\u2014 "  # em dash + space starts every signature line
FORMAT = "auditstream.bundle/v1"  # the header's "format", as auditstream export --bundle writes
HEADER_FIELDS = {"format", "tenant", "origin", "tree_size", "checkpoint", "public_key"}
LINE_FIELDS = {"event", "leaf_index", "inclusion_path"}  # and leaf_hash, for a redacted event
_SAFE_INT = 2**53 - 1  # the integers JCS (and rfc8785) take as integers
#: What a malformed line may raise while it is read: deep nesting, 1e999 as an index.
_MALFORMED = (ValueError, KeyError, TypeError, IndexError, RecursionError, OverflowError)


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
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise ValueError("not a verifier key (expected name+id+key)")
    name, kid_hex, b64 = parts
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


def _exact_float(text: str) -> float:
    """A number with a fraction or exponent, refused unless it is exactly the double it
    reads as: ``9007199254740990.6`` reads (and hashes) as ...990, so a line showing it
    would show a value the log never held. Writers print doubles exactly (shortest form)."""
    value = float(text)
    if not math.isfinite(value) or Decimal(text) != Decimal(repr(value)):
        raise ValueError(f"number {text[:40]} is not exactly the value it stands for")
    return value


def _json_int(text: str) -> int | float:
    """An integer beyond ±(2**53 - 1) is a double: JCS prints 1e17 as 100000000000000000,
    and the log hashed it as the double (the server refuses such integers as integers)."""
    n = int(text)
    return n if abs(n) <= _SAFE_INT else _exact_float(text)


def _loads(raw: bytes | str) -> Any:
    # UTF-8 only: json.loads would guess UTF-16 or UTF-32 from bytes, and accept lines
    # that other readers of the file (jq) cannot read.
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    return json.loads(text, object_pairs_hook=_strict_object, parse_float=_exact_float,
                      parse_int=_json_int)


def verify_bundle(lines: Iterable[bytes | str], vkey: str) -> BundleReport:
    report = BundleReport()
    it = iter(lines)
    try:
        header = _loads(next(it))
        if not isinstance(header, dict) or not isinstance(header.get("checkpoint"), str):
            raise ValueError("not a bundle header (no checkpoint)")
        origin, size, root = open_checkpoint(header["checkpoint"], vkey)
    except StopIteration:
        report.errors.append("bundle header: the bundle is empty")
        return report
    except _MALFORMED as exc:
        report.errors.append(f"bundle header: {exc}")
        return report
    report.origin, report.tree_size = origin, size
    tenant = header.get("tenant")
    if not origin.endswith(f"/{tenant}"):
        report.errors.append(f"checkpoint origin {origin!r} is not the log of {tenant!r}")
    # Every header field is the signed one or checked against it: a reader of the header
    # (jq .tree_size) must not see what the signature does not say.
    if header.get("format") != FORMAT:
        report.errors.append(f"bundle header: format {header.get('format')!r}, not {FORMAT!r}")
    if set(header) - HEADER_FIELDS:
        report.errors.append(f"bundle header: unknown fields {sorted(set(header) - HEADER_FIELDS)}")
    if header.get("origin") != origin or header.get("tree_size") != size:
        report.errors.append("bundle header: origin or tree_size is not the signed checkpoint's")
    if str(header.get("public_key", "")).strip() != vkey.strip():
        report.errors.append("bundle header: public_key is not the key it is verified with")
    if size == 0:
        report.errors.append("the checkpoint signs an empty log: the bundle proves no event")
    if report.errors:
        return report
    expected = 0
    claims: dict[int, tuple[hashlib._Hash, int, int]] = {}  # by → (digest, count, first seq)
    for raw in it:
        if not raw.strip():
            continue
        try:
            item = _loads(raw)
            ev, index = item["event"], item["leaf_index"]
            if not isinstance(ev, dict):
                raise TypeError("event is not an object")
            if type(index) is not int or type(ev.get("seq")) is not int:
                raise TypeError("leaf_index and seq must be integers")
            allowed = LINE_FIELDS | ({"leaf_hash"} if "redacted" in ev else set())
            if set(item) - allowed:
                raise ValueError(f"unknown fields {sorted(set(item) - allowed)}")
            path = [base64.b64decode(h, validate=True) for h in item["inclusion_path"]]
            if "redacted" in ev:
                leaf = base64.b64decode(item["leaf_hash"], validate=True)
                report.redacted += 1
            else:
                leaf = hashlib.sha256(b"\x00" + rfc8785.dumps(ev)).digest()
        except _MALFORMED as exc:
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
    payload = ev.get("payload")
    detail = payload.get("redaction") if isinstance(payload, dict) else None
    if not isinstance(detail, dict):
        detail = {}
    h, count, first = got or (hashlib.sha256(), 0, seq)
    if detail.get("count") != count or detail.get("digest") != h.hexdigest():
        return f"redaction record does not match the stubs that name it (from seq {first})"
    return None


# -- command line ---------------------------------------------------------------------------

_MAX_HEADER = 1 << 20  # a header is a checkpoint, a key and a few names: far below this


def _not_a_bundle(first: bytes) -> str | None:
    """Why the first line cannot start a bundle, or None if it can."""
    if not first:
        return "is empty: it is not a bundle"
    if len(first) >= _MAX_HEADER and not first.endswith(b"\n"):
        return "is not an auditstream bundle (its first line is not a bundle header)"
    try:
        header = _loads(first)
    except (ValueError, RecursionError):
        return "is not an auditstream bundle (its first line is not JSON)"
    if not isinstance(header, dict) or "format" not in header:
        return "is not an auditstream bundle (its first line is not a bundle header)"
    if header["format"] != FORMAT:
        return f"has bundle format {header['format']!r}; this verifier reads {FORMAT!r}"
    if not isinstance(header.get("checkpoint"), str):
        return "is not an auditstream bundle (its header holds no checkpoint)"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``python verifier.py BUNDLE PUBLIC_KEY``: 0 verified, 1 not verified, 2 usage error."""
    parser = argparse.ArgumentParser(
        prog="verifier.py",
        description="Check an auditstream export bundle (auditstream export --bundle) offline "
        "with nothing but the log's public key.",
        epilog="Exit status: 0 every event is proven in the signed checkpoint; 1 verification "
        "failed (each fault on stderr); 2 usage error, unreadable file, invalid key, or an "
        "empty input or one that is not a bundle.")
    parser.add_argument("bundle", metavar="BUNDLE",
                        help="the bundle file, or - for standard input")
    parser.add_argument("public_key", metavar="PUBLIC_KEY",
                        help="file holding the public key as served at "
                        "GET /v1/integrity/public-key (kept away from the server)")
    args = parser.parse_args(argv)  # wrong arguments: usage on stderr, exit 2

    def usage_error(message: str) -> int:
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2

    try:
        with open(args.public_key, encoding="utf-8") as kf:
            vkey = kf.read(_MAX_HEADER).strip()
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8
        return usage_error(f"cannot read public key {args.public_key!r}: {exc}")
    try:
        Ed25519PublicKey.from_public_bytes(_parse_vkey(vkey)[2])
    except ValueError as exc:
        return usage_error(f"{args.public_key!r} does not hold an auditstream public key "
                           f"(as served at /v1/integrity/public-key): {exc}")

    name = "standard input" if args.bundle == "-" else repr(args.bundle)
    try:
        f = sys.stdin.buffer if args.bundle == "-" else open(args.bundle, "rb")  # noqa: SIM115
    except OSError as exc:
        return usage_error(f"cannot read bundle {name}: {exc}")
    try:
        with f:
            first = f.readline(_MAX_HEADER)
            problem = _not_a_bundle(first)
            if problem:
                return usage_error(f"bundle {name} {problem}")
            report = verify_bundle(itertools.chain([first], f), vkey)
    except OSError as exc:
        return usage_error(f"cannot read bundle {name}: {exc}")

    if not report.ok:
        for e in report.errors:
            print(f"FAIL {e}", file=sys.stderr)
        return 1
    print(f"OK: {report.events} events ({report.redacted} redacted) proven in the signed "
          f"checkpoint of {report.origin} at size {report.tree_size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
