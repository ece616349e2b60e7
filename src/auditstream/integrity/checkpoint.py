"""C2SP tlog-checkpoint bodies wrapped in C2SP signed notes, signed with Ed25519.

Wire formats (https://c2sp.org/tlog-checkpoint, https://c2sp.org/signed-note)::

    checkpoint body   <origin>\\n<size>\\n<base64(root)>\\n[<extension line>\\n]...
    signed note       <body>\\n— <key name> <base64(key id || signature)>\\n  (one line per signer)
    key id            SHA-256(<key name> || 0x0A || 0x01 || <32-byte Ed25519 public key>)[:4]
    verifier key      <name>+<hex key id>+<base64(0x01 || public key)>
    signer key        PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || 32-byte seed)>

These match golang.org/x/mod/sumdb/note byte for byte (tests check its published vector), so
notes can be verified by the Go ecosystem's tooling (witnesses, ``sumdb``-style clients).
Ed25519 signing is deterministic: the same key and body always give the same note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "Checkpoint",
    "CheckpointFormatError",
    "KeyFormatError",
    "MalformedNoteError",
    "NoteVerificationError",
    "Signer",
    "Verifier",
    "format_checkpoint",
    "generate_signer",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "sign_note",
]

ALG_ED25519: Final = 0x01
_SIG_PREFIX: Final = "\u2014 "  # em dash, space
_MAX_SIGNATURES: Final = 100  # the spec demands >= 16; Go's reference stops at 100
_ROOT_SIZE: Final = 32
_MAX_TREE_SIZE: Final = 2**64 - 1
_KEY_ID_HEX: Final = re.compile(r"[0-9a-fA-F]{8}")
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]*")
_CONTROL: Final = re.compile(r"[\x00-\x09\x0b-\x1f]")  # C0 controls other than newline


class KeyFormatError(ValueError):
    """A signer or verifier key string is malformed, of an unknown type, or self-inconsistent."""


class NoteVerificationError(ValueError):
    """A signed note was not (validly) signed by the expected key, or could not be parsed."""


class MalformedNoteError(NoteVerificationError):
    """The note text violates the signed-note syntax (so no signature was even checked)."""


class CheckpointFormatError(ValueError):
    """A checkpoint body violates the tlog-checkpoint syntax."""


# ---------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------


def _valid_name(name: str) -> bool:
    # Names are non-empty, with no Unicode spaces or "+" (the key-string separator); control
    # characters are excluded too because they are illegal anywhere in a note.
    return (
        isinstance(name, str)
        and name != ""
        and "+" not in name
        and not any(c.isspace() for c in name)
        and _CONTROL.search(name) is None
        and _is_utf8(name)
    )


def _is_utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte C2SP key id of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || pubkey)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _b64decode_strict(s: str) -> bytes:
    """Standard base64 with padding, no whitespace or foreign characters, canonical form."""
    try:
        raw = base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise ValueError("invalid base64") from exc
    # Reject non-zero padding bits so that each value has exactly one accepted spelling.
    if base64.b64encode(raw).decode("ascii") != s:
        raise ValueError("non-canonical base64")
    return raw


def _parse_key_payload(name: str, id_hex: str, b64: str) -> tuple[bytes, bytes]:
    """Validate ``name``/id/type and return (key id, 32-byte key material)."""
    if not _valid_name(name):
        raise KeyFormatError(f"invalid key name {name!r}")
    if not _KEY_ID_HEX.fullmatch(id_hex):
        raise KeyFormatError("key id must be 8 hex digits")
    try:
        raw = _b64decode_strict(b64)
    except ValueError as exc:
        raise KeyFormatError(f"key material: {exc}") from None
    if len(raw) == 0 or raw[0] != ALG_ED25519:
        raise KeyFormatError("unsupported key type (only Ed25519, type 0x01)")
    if len(raw) != 1 + 32:
        raise KeyFormatError("Ed25519 key material must be 32 bytes")
    return bytes.fromhex(id_hex), raw[1:]


class Verifier:
    """A named Ed25519 public key that checks signed-note signatures."""

    __slots__ = ("_public", "key_id", "name", "public_key")

    name: str
    key_id: bytes
    public_key: bytes

    def __init__(self, name: str, public_key: bytes) -> None:
        """Build from a key name and a raw 32-byte Ed25519 public key."""
        if not _valid_name(name):
            raise KeyFormatError(f"invalid key name {name!r}")
        try:
            self._public = Ed25519PublicKey.from_public_bytes(public_key)
        except ValueError as exc:
            raise KeyFormatError("Ed25519 public key must be 32 bytes") from exc
        self.name = name
        self.public_key = bytes(public_key)
        self.key_id = key_id(name, self.public_key)

    @classmethod
    def from_key_string(cls, vkey: str) -> Verifier:
        """Parse ``name+keyid+base64(0x01||pubkey)``; the key id must match the key."""
        if not isinstance(vkey, str):
            raise KeyFormatError("verifier key must be a str")
        parts = vkey.split("+", 2)  # base64 may itself contain "+"
        if len(parts) != 3:
            raise KeyFormatError("verifier key must look like name+keyid+key")
        name, id_hex, b64 = parts
        kid, pub = _parse_key_payload(name, id_hex, b64)
        v = cls(name, pub)
        if v.key_id != kid:
            raise KeyFormatError("key id does not match the verifier key")
        return v

    def key_string(self) -> str:
        """Encode as ``name+keyid+base64(0x01||pubkey)`` (what clients pin)."""
        pub = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{pub}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True iff ``signature`` is a valid Ed25519 signature of ``message`` by this key."""
        try:
            self._public.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"Verifier({self.key_string()!r})"


class Signer:
    """A named Ed25519 private key that signs notes. ``repr`` never shows key material."""

    __slots__ = ("_private", "_seed", "key_id", "name", "public_key")

    name: str
    key_id: bytes
    public_key: bytes

    def __init__(self, name: str, seed: bytes) -> None:
        """Build from a key name and a raw 32-byte Ed25519 seed (RFC 8032 private key)."""
        if not _valid_name(name):
            raise KeyFormatError(f"invalid key name {name!r}")
        try:
            self._private = Ed25519PrivateKey.from_private_bytes(seed)
        except ValueError as exc:
            raise KeyFormatError("Ed25519 seed must be 32 bytes") from exc
        self._seed = bytes(seed)
        self.name = name
        self.public_key = self._private.public_key().public_bytes_raw()
        self.key_id = key_id(name, self.public_key)

    @classmethod
    def from_key_string(cls, skey: str) -> Signer:
        """Parse ``PRIVATE+KEY+name+keyid+base64(0x01||seed)``; the id must match the key."""
        if not isinstance(skey, str):
            raise KeyFormatError("signer key must be a str")
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise KeyFormatError("signer key must look like PRIVATE+KEY+name+keyid+key")
        _, _, name, id_hex, b64 = parts
        kid, seed = _parse_key_payload(name, id_hex, b64)
        s = cls(name, seed)
        if s.key_id != kid:
            raise KeyFormatError("key id does not match the signer key")
        return s

    def key_string(self) -> str:
        """Encode as ``PRIVATE+KEY+name+keyid+base64(0x01||seed)``. This is a secret."""
        seed = base64.b64encode(bytes([ALG_ED25519]) + self._seed).decode("ascii")
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{seed}"

    def verifier(self) -> Verifier:
        """The matching :class:`Verifier`."""
        return Verifier(self.name, self.public_key)

    def verifier_key(self) -> str:
        """The public verifier key string ``name+keyid+base64(0x01||pubkey)``."""
        return self.verifier().key_string()

    def sign(self, message: bytes) -> bytes:
        """Raw 64-byte Ed25519 signature of ``message``."""
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id.hex()!r})"


def generate_signer(name: str) -> Signer:
    """Create a fresh Ed25519 signer from the OS CSPRNG."""
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    return Signer(name, seed)


# ---------------------------------------------------------------------------------------------
# Signed notes
# ---------------------------------------------------------------------------------------------


def _check_note_text(text: str, exc: type[ValueError]) -> None:
    if not _is_utf8(text):
        raise exc("note is not valid UTF-8")
    if _CONTROL.search(text):
        raise exc("note contains ASCII control characters other than newline")


def sign_note(body: str, signer: Signer) -> str:
    """Return the signed note ``body + "\\n" + "— name base64(keyid||sig)\\n"``.

    ``body`` must be valid UTF-8 text that ends in a newline and holds no control characters
    other than newline (``ValueError`` otherwise). The signature covers the UTF-8 bytes of
    ``body`` including its final newline, not the separating blank line.
    """
    if not isinstance(body, str) or not body.endswith("\n"):
        raise ValueError("note body must be a str ending in a newline")
    _check_note_text(body, ValueError)
    msg = body.encode("utf-8")
    sig = base64.b64encode(signer.key_id + signer.sign(msg)).decode("ascii")
    return f"{body}\n{_SIG_PREFIX}{signer.name} {sig}\n"


def open_note(note: str | bytes, verifier: str | Verifier) -> str:
    """Verify ``note`` against one trusted key and return its body (text before the blank line).

    Follows the C2SP signed-note rules: signatures by other keys (different name or key id)
    are ignored, so witness cosignatures may ride along; every signature by the trusted key
    must verify; at least one must be present.

    Raises:
        MalformedNoteError: the note does not parse (bad UTF-8, control characters, no blank
            line before the signatures, malformed signature line, more than 100 signatures).
        NoteVerificationError: no signature by the trusted key, or one that does not verify.
        KeyFormatError: ``verifier`` is a malformed key string.
    """
    v = verifier if isinstance(verifier, Verifier) else Verifier.from_key_string(verifier)
    if isinstance(note, bytes | bytearray):
        try:
            text = bytes(note).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedNoteError("note is not valid UTF-8") from None
    elif isinstance(note, str):
        text = note
    else:
        raise MalformedNoteError("note must be str or bytes")
    _check_note_text(text, MalformedNoteError)

    # The text is separated from the signatures by the *last* blank line.
    split = text.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("note has no blank line before its signatures")
    body, sig_block = text[: split + 1], text[split + 2 :]
    if not sig_block or not sig_block.endswith("\n"):
        raise MalformedNoteError("signature block is empty or does not end in a newline")
    lines = sig_block[:-1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise MalformedNoteError("too many signatures")

    msg = body.encode("utf-8")
    verified = False
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise MalformedNoteError("signature line does not start with an em dash and space")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not _valid_name(name) or not b64:
            raise MalformedNoteError("malformed signature line")
        try:
            raw = _b64decode_strict(b64)
        except ValueError:
            raise MalformedNoteError("signature is not valid base64") from None
        if len(raw) < 5:
            raise MalformedNoteError("signature is too short")
        if name != v.name or raw[:4] != v.key_id:
            continue  # someone else's signature (e.g. a witness): not ours to judge
        if not v.verify(msg, raw[4:]):
            raise NoteVerificationError(f"invalid signature by {v.name}+{v.key_id.hex()}")
        verified = True
    if not verified:
        raise NoteVerificationError(f"note is not signed by {v.name}+{v.key_id.hex()}")
    return body


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A parsed tlog-checkpoint body: the log's identity and its tree head."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def to_body(self) -> str:
        """Serialise back to the exact checkpoint body (see :func:`format_checkpoint`)."""
        return format_checkpoint(self.origin, self.size, self.root, self.extensions)


def _check_line(line: str, what: str, exc: type[ValueError]) -> None:
    if not isinstance(line, str) or line == "":
        raise exc(f"{what} must be a non-empty str")
    if "\n" in line or _CONTROL.search(line) or not _is_utf8(line):
        raise exc(f"{what} must be one line of UTF-8 text without control characters")


def format_checkpoint(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...] | list[str] = ()
) -> str:
    """Build the checkpoint body ``f"{origin}\\n{size}\\n{base64(root)}\\n"`` (+ extensions).

    ``parse_checkpoint(format_checkpoint(...))`` returns the same values. Raises
    ``CheckpointFormatError`` for an empty/multi-line origin, a negative size, a root that is
    not 32 bytes, or an empty/multi-line extension.
    """
    _check_line(origin, "origin", CheckpointFormatError)
    if type(size) is not int or not 0 <= size <= _MAX_TREE_SIZE:
        raise CheckpointFormatError("size must be an int in [0, 2**64)")
    if not isinstance(root, bytes) or len(root) != _ROOT_SIZE:
        raise CheckpointFormatError(f"root must be {_ROOT_SIZE} bytes")
    for ext in extensions:
        _check_line(ext, "extension line", CheckpointFormatError)
    lines = [origin, str(size), base64.b64encode(root).decode("ascii"), *extensions]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse a checkpoint body (normally the result of :func:`open_note`).

    Strict: at least three non-empty lines each ending in newline; size in canonical decimal
    (no sign, no leading zeros) below 2**64; root as canonical base64 of exactly 32 bytes;
    extension lines non-empty. Raises ``CheckpointFormatError`` otherwise.
    """
    if not isinstance(body, str) or not body.endswith("\n"):
        raise CheckpointFormatError("checkpoint body must be a str ending in a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointFormatError("checkpoint needs origin, size and root lines")
    if any(line == "" for line in lines):
        raise CheckpointFormatError("checkpoint lines must be non-empty")
    origin, size_s, root_s, *extensions = lines
    for i, line in enumerate(lines):
        _check_line(line, f"line {i + 1}", CheckpointFormatError)
    if not (size_s.isascii() and _DECIMAL.fullmatch(size_s)):
        raise CheckpointFormatError("tree size must be a canonical decimal number")
    size = int(size_s)
    if size > _MAX_TREE_SIZE:
        raise CheckpointFormatError("tree size exceeds 2**64 - 1")
    try:
        root = _b64decode_strict(root_s)
    except ValueError as exc:
        raise CheckpointFormatError(f"root hash: {exc}") from None
    if len(root) != _ROOT_SIZE:
        raise CheckpointFormatError(f"root hash must be {_ROOT_SIZE} bytes")
    return Checkpoint(origin, size, root, tuple(extensions))


def open_checkpoint(note: str | bytes, verifier: str | Verifier) -> Checkpoint:
    """``parse_checkpoint(open_note(note, verifier))``: verify, then parse, a signed checkpoint.

    Callers must still check that ``origin`` is the log they expect.
    """
    return parse_checkpoint(open_note(note, verifier))
