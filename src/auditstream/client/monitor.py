"""The client as the log's monitor: every event read is proven, every checkpoint extends.

A ``LogMonitor`` holds the server's public key (C2SP verifier key string, as
``GET /v1/integrity/public-key`` prints it) and the newest signed checkpoint seen of the
tenant's log, kept in a small JSON state file between runs::

    {"version": 1, "public_key": "auditstream.local+…", "checkpoint": "<signed note>"}

Each new checkpoint must be validly signed, be of the same log (origin) and extend the
kept one (an RFC 9162 consistency proof from ``GET /v1/integrity/proof/consistency``,
checked by ``integrity.witness.check_extension``, the same check ``auditstream pull``
makes); a checkpoint older than the kept one must be a prefix of it. Each event must hash
(RFC 9162 leaf of its RFC 8785 bytes) to the leaf its inclusion proof puts in a checkpoint
that passed. A redacted event (``redacted`` present) keeps its original leaf, so only its
position is proven, not its remaining fields.

The monitor does no I/O but the state file: ``observe`` / ``aobserve`` take the function
that fetches a consistency proof, so the sync and the async client share it. It is safe
to share between threads (and between the coroutines of one loop).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from ..integrity import merkle, witness
from ..integrity.canonical import CanonicalizationError, canonical_bytes, numbers_as_read
from ..integrity.checkpoint import Checkpoint, Verifier, open_checkpoint
from .errors import ClientError, ForkError, ProofError, RollbackError, VerificationError

__all__ = ["LogMonitor", "decode_hashes"]

STATE_VERSION = 1
Span = tuple[int, int]


def decode_hashes(values: Any) -> list[bytes]:
    """A proof's list of base64 hashes; ``ProofError`` when it is not one."""
    if not isinstance(values, list):
        raise ProofError("a proof path is not a list")
    try:
        out = [base64.b64decode(v, validate=True) for v in values]
    except (ValueError, TypeError):
        raise ProofError("a proof hash is not valid base64") from None
    if any(len(h) != merkle.HASH_SIZE for h in out):
        raise ProofError("a proof hash is not 32 bytes")
    return out


class LogMonitor:
    """Checks checkpoints and inclusion proofs against one public key; keeps the newest
    checkpoint seen in ``state`` (a file path; ``None`` keeps it in memory only).

    >>> monitor = LogMonitor(public_key, "acme.checkpoint.json")  # doctest: +SKIP
    >>> cp = monitor.observe(note, fetch_consistency)              # doctest: +SKIP
    >>> monitor.check_event(event, proof, cp)                      # doctest: +SKIP
    """

    def __init__(self, public_key: str, state: str | Path | None = None) -> None:
        try:
            self.verifier = Verifier.from_key_string(public_key.strip())
        except ValueError as exc:
            raise ValueError(f"public_key is not a C2SP verifier key: {exc}") from None
        self.path = Path(state) if state is not None else None
        self._lock = threading.Lock()
        self._kept: Checkpoint | None = None
        self._kept_note: str | None = None
        if self.path is not None:
            self._load(self.path)

    @property
    def kept(self) -> Checkpoint | None:
        """The newest checkpoint seen (and proven to extend every one before it)."""
        return self._kept

    def _load(self, path: Path) -> None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        try:
            doc = orjson.loads(raw)
            if doc.get("version") != STATE_VERSION:
                raise ValueError(f"unsupported version {doc.get('version')!r}")
            key, note = doc["public_key"], doc.get("checkpoint")
        except (ValueError, AttributeError, KeyError, TypeError) as exc:
            raise ClientError(f"{path} is not a monitor state file: {exc}") from None
        if key != self.verifier.key_string():
            # A new key means a new log: silently trusting it would hide a swapped server.
            raise VerificationError(f"{path} pins another public key ({key}); a new key "
                                    "means a new log: use a new state file")
        if note is not None:
            try:
                self._kept = open_checkpoint(note, self.verifier)
            except ValueError as exc:
                raise VerificationError(f"{path}: the kept checkpoint does not verify: "
                                        f"{exc}") from None
            self._kept_note = note

    def _save(self) -> None:
        if self.path is None:
            return
        from ..cli_export import write_atomic  # the project's atomic, fsynced file write

        doc = {"version": STATE_VERSION, "public_key": self.verifier.key_string(),
               "checkpoint": self._kept_note}
        write_atomic(self.path, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")

    # -- checkpoints ----------------------------------------------------------------------

    def _open(self, note: str) -> Checkpoint:
        try:
            return open_checkpoint(note, self.verifier)
        except ValueError as exc:
            raise VerificationError(f"a checkpoint is not validly signed: {exc}") from None

    def _span(self, cp: Checkpoint, kept: Checkpoint | None) -> Span | None:
        """The consistency proof needed between ``kept`` and ``cp``, smaller size first."""
        if kept is None:
            return None
        if cp.origin != kept.origin:
            raise ForkError(f"the checkpoint is of log {cp.origin!r}, the one seen before of "
                            f"{kept.origin!r}")
        if cp.size < kept.size:
            # Also from 0: the proof is empty, but only a log that still holds the kept
            # size can answer it (a rolled-back one refuses the size).
            return (cp.size, kept.size)
        if 0 < kept.size < cp.size:
            return (kept.size, cp.size)
        return None

    def _accept(self, note: str, cp: Checkpoint, kept: Checkpoint | None,
                proof: Sequence[bytes]) -> bool:
        """Record ``cp`` if ``kept`` is still the kept one; False to plan again."""
        with self._lock:
            if self._kept is not kept:
                return False
            if kept is not None:
                older, newer = (kept, cp) if cp.size >= kept.size else (cp, kept)
                try:
                    witness.check_extension(older, newer, proof)
                except witness.RollbackError as exc:
                    raise RollbackError(str(exc)) from None
                except witness.ForkError as exc:
                    raise ForkError(str(exc)) from None
            if kept is None or cp.size > kept.size:
                self._kept, self._kept_note = cp, note
                self._save()
            return True

    def _unprovable(self, cp: Checkpoint, kept: Checkpoint, exc: ClientError) -> Exception:
        if cp.size < kept.size:
            return RollbackError(
                f"ROLLED BACK: the log of {cp.origin} offers a checkpoint of {cp.size} "
                f"entries and cannot prove the {kept.size} signed before ({exc})")
        return exc

    def observe(self, note: str, fetch: Callable[[int, int], Sequence[bytes]]) -> Checkpoint:
        """Verify a signed checkpoint and its consistency with the kept one; keep it if newer.

        ``fetch(first, second)`` returns the consistency proof between two tree sizes.
        Raises ``VerificationError`` (``ForkError``, ``RollbackError``) on a bad one.
        """
        cp = self._open(note)
        while True:
            kept = self._kept
            span = self._span(cp, kept)
            proof: Sequence[bytes] = []
            if span is not None and kept is not None:
                try:
                    proof = fetch(*span)
                except ClientError as exc:
                    raise self._unprovable(cp, kept, exc) from exc
            if self._accept(note, cp, kept, proof):
                return cp

    async def aobserve(self, note: str,
                       fetch: Callable[[int, int], Awaitable[Sequence[bytes]]]) -> Checkpoint:
        """``observe`` with an async ``fetch``."""
        cp = self._open(note)
        while True:
            kept = self._kept
            span = self._span(cp, kept)
            proof: Sequence[bytes] = []
            if span is not None and kept is not None:
                try:
                    proof = await fetch(*span)
                except ClientError as exc:
                    raise self._unprovable(cp, kept, exc) from exc
            if self._accept(note, cp, kept, proof):
                return cp

    # -- events ---------------------------------------------------------------------------

    def check_event(self, event: Mapping[str, Any], proof: Any, cp: Checkpoint | None) -> None:
        """Raise ``ProofError`` unless ``proof`` shows ``event`` is leaf ``seq - 1`` of ``cp``.

        ``proof`` is ``{"leaf_index", "tree_size", "leaf_hash", "inclusion_path"}``.
        """
        seq = event.get("seq")
        where = f"event {event.get('id')!r} (seq {seq!r})"
        if cp is None:
            raise ProofError(f"{where} came before any checkpoint")
        if not isinstance(proof, Mapping):
            raise ProofError(f"{where} came without an inclusion proof")
        tenant = event.get("tenant")
        if not isinstance(tenant, str) or not cp.origin.endswith(f"/{tenant}"):
            raise ProofError(f"{where} is of tenant {tenant!r}, the checkpoint of log "
                             f"{cp.origin!r}")
        index, size = proof.get("leaf_index"), proof.get("tree_size")
        if type(seq) is not int or index != seq - 1:
            raise ProofError(f"{where}: the proof is for leaf {index!r}")
        if size != cp.size:
            raise ProofError(f"{where}: the proof is against tree size {size!r}, the "
                             f"checkpoint has {cp.size}")
        try:
            leaf = base64.b64decode(proof.get("leaf_hash", ""), validate=True)
        except (ValueError, TypeError):
            raise ProofError(f"{where}: the leaf hash is not base64") from None
        if "redacted" not in event:
            try:
                own = merkle.leaf_hash(canonical_bytes(numbers_as_read(dict(event))))
            except CanonicalizationError as exc:
                raise ProofError(f"{where} has no canonical form: {exc}") from None
            if own != leaf:
                raise ProofError(f"{where} does not hash to its leaf: its content was altered")
        path = decode_hashes(proof.get("inclusion_path"))
        if not merkle.verify_inclusion(leaf, index, cp.size, path, cp.root):
            raise ProofError(f"{where} is not included in the signed checkpoint of size "
                             f"{cp.size} (proof forged or log rewritten)")
