"""The event-type catalog: default category and severity for documented types.

Loaded from ``data/turqoa_catalog.json`` (data, not code) so operators can read it and a
later version can let them extend it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any


@lru_cache(maxsize=1)
def _catalog() -> dict[str, Any]:
    text = resources.files("auditstream").joinpath("data/turqoa_catalog.json").read_text()
    return dict(json.loads(text))


def categories() -> list[str]:
    return list(_catalog()["categories"])


@lru_cache(maxsize=1)
def type_defaults() -> dict[str, tuple[str | None, str | None]]:
    """type → (category, default severity or None where the catalog says "varies")."""
    return {t["type"]: (t.get("category"), t.get("severity")) for t in _catalog()["types"]}
