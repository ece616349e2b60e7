"""Severities are ordered: ``info`` < ``low`` < ``medium`` < ``high`` < ``critical``."""

from __future__ import annotations

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
RANK: dict[str, int] = {name: i for i, name in enumerate(SEVERITIES)}


def rank(name: str) -> int:
    """The ordinal of a severity name; ``KeyError`` for an unknown one."""
    return RANK[name]
