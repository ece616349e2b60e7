"""Remembering checkpoints: what catches a log that was rolled back or rewritten.

The database file alone cannot show that its newest events were removed together with
their checkpoints, or replaced by others: what is left is a consistent, validly signed
log. A checkpoint kept elsewhere can: every later checkpoint of an honest log is an
append-only extension of it, which an RFC 9162 consistency proof shows. ``auditstream
pull`` and ``export --bundle`` keep the last checkpoint they saw and check each new one
against it; ``verify --db --checkpoint`` checks the file against kept ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import merkle
from .checkpoint import Checkpoint


class WitnessError(ValueError):
    """The log is not an extension of the checkpoint seen before."""


class RollbackError(WitnessError):
    pass


class ForkError(WitnessError):
    pass


def check_extension(previous: Checkpoint, current: Checkpoint, proof: Sequence[bytes]) -> None:
    """Raise unless ``current`` extends ``previous`` (same log, ``proof`` consistent)."""
    if current.origin != previous.origin:
        raise ForkError(f"the checkpoint is of log {current.origin!r}, the one seen before "
                        f"of {previous.origin!r}")
    if current.size < previous.size:
        raise RollbackError(
            f"ROLLED BACK: the log of {current.origin} now has {current.size} entries, but "
            f"{previous.size} were signed before; its newest entries were removed")
    if not merkle.verify_consistency(previous.size, current.size, previous.root, current.root,
                                     proof):
        raise ForkError(
            f"FORKED: the log of {current.origin} at size {current.size} does not extend the "
            f"checkpoint of size {previous.size} seen before; entries were rewritten")


__all__ = ["ForkError", "RollbackError", "WitnessError", "check_extension"]
