"""The deployment's checkpoint signing key, created on first start and kept with the data."""

from __future__ import annotations

import os
from pathlib import Path

from .checkpoint import Signer, generate_signer


def key_path(db_path: str | Path) -> Path:
    p = Path(db_path)
    return p.with_name(p.name + ".signing-key")


def load_or_create_signer(db_path: str | Path, name: str) -> Signer:
    """The signer stored beside the database, or a new one written there (mode 0600)."""
    path = key_path(db_path)
    if path.exists():
        return Signer.from_key_string(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    signer = generate_signer(name)
    # O_EXCL: two processes starting at once must not end up with two different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return Signer.from_key_string(path.read_text().strip())
    with os.fdopen(fd, "w") as f:
        f.write(signer.key_string() + "\n")
        f.flush()
        os.fsync(f.fileno())
    return signer
