"""The deployment's checkpoint signing key, created on first start and kept with the data."""

from __future__ import annotations

from pathlib import Path

from ..secret_file import beside, load_or_create
from .checkpoint import Signer, generate_signer


def key_path(db_path: str | Path) -> Path:
    return beside(db_path, ".signing-key")


def load_or_create_signer(db_path: str | Path, name: str) -> Signer:
    """The signer stored beside the database, or a new one written there (mode 0600), the
    same one for every process that starts at the same instant (``secret_file``)."""
    return Signer.from_key_string(
        load_or_create(key_path(db_path), lambda: generate_signer(name).key_string()).strip())
