"""Tamper evidence for audit logs: pure functions, no database, no I/O.

* :mod:`.canonical` -- RFC 8785 canonical JSON bytes of an event (what gets hashed).
* :mod:`.merkle` -- RFC 9162 Merkle tree: leaf/node hashing, an append-only compact range,
  inclusion and consistency proofs read through a ``get_node(level, index)`` store callback,
  and independent verifiers.
* :mod:`.checkpoint` -- C2SP tlog-checkpoint bodies in C2SP signed notes (Ed25519), compatible
  with golang.org/x/mod/sumdb/note.

A log entry's leaf hash is ``leaf_hash(canonical_bytes(event))``; a signed checkpoint commits to
``root_hash(size, get_node)``; clients check proofs with ``verify_inclusion`` /
``verify_consistency`` against a checkpoint they opened with ``open_checkpoint``.
"""

from auditstream.integrity.canonical import CanonicalizationError, canonical_bytes
from auditstream.integrity.checkpoint import (
    Checkpoint,
    CheckpointFormatError,
    KeyFormatError,
    MalformedNoteError,
    NoteVerificationError,
    Signer,
    Verifier,
    format_checkpoint,
    generate_signer,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    sign_note,
)
from auditstream.integrity.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    Node,
    NodeGetter,
    NodeId,
    consistency_node_ids,
    consistency_path,
    inclusion_node_ids,
    inclusion_path,
    leaf_hash,
    node_hash,
    root_hash,
    root_node_ids,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CanonicalizationError",
    "Checkpoint",
    "CheckpointFormatError",
    "CompactRange",
    "KeyFormatError",
    "MalformedNoteError",
    "Node",
    "NodeGetter",
    "NodeId",
    "NoteVerificationError",
    "Signer",
    "Verifier",
    "canonical_bytes",
    "consistency_node_ids",
    "consistency_path",
    "format_checkpoint",
    "generate_signer",
    "inclusion_node_ids",
    "inclusion_path",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "root_hash",
    "root_node_ids",
    "sign_note",
    "subtree_hash",
    "verify_consistency",
    "verify_inclusion",
]
