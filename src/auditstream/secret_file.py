"""A secret kept in a file beside the database: created once, atomically, owner-only.

Every process of a server (and every server on the same file) must end up with the same
secret, even when several start at the same instant on a fresh database. ``O_CREAT |
O_EXCL`` alone is not enough: the winner creates the file empty and writes it afterwards,
so a process that loses the race can read it in between. The secret is therefore written
and synced under a temporary name and published with ``link()``, which fails if the name
exists: the file appears whole or not at all, and whoever loses reads the winner's.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def beside(db_path: str | Path, suffix: str) -> Path:
    """``<db><suffix>``, e.g. ``data/auditstream.db.jwt-secret``."""
    p = Path(db_path)
    return p.with_name(p.name + suffix)


def load_or_create(path: Path, generate: Callable[[], str]) -> str:
    """The secret in ``path``, or ``generate()`` written there (mode 0600) if there is none.

    A file that exists but is empty is an error, not replaced: a process may already have
    handed out tokens signed with what it held, and the operator should decide.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _publish(path, generate())
    secret = path.read_text().strip()
    if not secret:
        raise RuntimeError(f"{path} is empty: delete it to have a new secret made")
    return secret


def _publish(path: Path, secret: str) -> None:
    # mkstemp creates the file 0600, so the secret is never readable by others.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process won: use its secret
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the new name durable, so a secret that signed tokens survives power loss."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
