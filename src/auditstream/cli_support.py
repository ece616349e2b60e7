"""What every ``auditstream`` command shares: its settings, the database it works on, and
how it reports a failure (one line on stderr, then an exit status).

Exit statuses: ``0`` done; ``FAILED`` (1) the command ran and something it was asked to do
did not happen; ``USAGE`` (2) it could not start as given (bad option or setting, missing
database, unknown tenant).

Only ``serve`` and ``tenants create`` may create a database. Every other command goes
through ``existing_db``: run from the wrong directory, a command says which file it looked
for and how to point at the right one, instead of quietly creating an empty
``data/auditstream.db`` and answering with nothing.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from .dbapi import sqlite3
from .errors import FieldError, ProblemError
from .settings import Settings

__all__ = ["FAILED", "USAGE", "err", "existing_db", "existing_tenant", "fail",
           "field_error_text", "has_tenant", "problem_lines", "settings"]

FAILED = 1
USAGE = 2

#: stderr, never wrapped: an error stays one line whatever the terminal's width.
err = Console(stderr=True, soft_wrap=True, highlight=False)

DB_HINT = ("point at yours with --db PATH or AUDITSTREAM_DB=PATH (`auditstream serve` or "
           "`auditstream tenants create` start a new one)")


def fail(message: str, code: int = FAILED, *more: str) -> NoReturn:
    """Print ``error: message`` (and any further lines) on stderr and exit with ``code``."""
    err.print(f"[red]error:[/red] {escape(message)}")
    for line in more:
        err.print(escape(line))
    raise typer.Exit(code)


def settings(**overrides: Any) -> Settings:
    """The settings, or one line naming the bad ``AUDITSTREAM_*`` value (exit 2)."""
    try:
        return Settings.from_env(**overrides)
    except ValueError as exc:
        fail(str(exc), USAGE)


def field_error_text(e: FieldError) -> str:
    """``field timestamp: reason`` (the position, if any, is the caller's to name)."""
    return f"field {e.get('field', '(event)')}: {e.get('reason', '')}"


def problem_lines(
    exc: ProblemError, where: Callable[[FieldError], str] | None = None
) -> list[str]:
    """One sentence per field error, prefixed by ``where(error)`` when given."""
    return [f"{where(e)}: {field_error_text(e)}" if where else field_error_text(e)
            for e in exc.errors]


def _shown(path: str) -> str:
    # Absolute, without resolving symlinks: the path as the user would type it.
    return os.path.abspath(path)


def _read_only(path: str) -> sqlite3.Connection:
    return sqlite3.connect(Path(path).absolute().as_uri() + "?mode=ro", uri=True)


def has_tenant(path: str, tenant: str) -> bool:
    """Whether the database at ``path`` (if there is one) has ``tenant``; changes nothing."""
    if not Path(path).is_file():
        return False
    try:
        return tenant in _tenants(path)
    except sqlite3.Error:
        return False


def existing_db(path: str) -> str:
    """``path`` if it is an auditstream database; otherwise say so and exit 2.

    Never creates or changes the file: it is only opened read-only, to check it holds
    auditstream's tables.
    """
    p = Path(path)
    if not p.is_file():
        fail(f"no database at {_shown(path)}; {DB_HINT}", USAGE)
    try:
        conn = _read_only(path)
        try:
            ours = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                "AND name = 'tenants'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        ours = None
    if not ours:
        fail(f"{_shown(path)} is not an auditstream database; {DB_HINT}", USAGE)
    return path


def _tenants(path: str) -> list[str]:
    conn = _read_only(path)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM tenants ORDER BY name")]
    finally:
        conn.close()


def existing_tenant(path: str, tenant: str) -> str:
    """``tenant`` if the database at ``path`` has it; otherwise name the ones it has, exit 2."""
    names = _tenants(path)
    if tenant in names:
        return tenant
    have = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    fail(f"no tenant {tenant!r} in {_shown(path)} (it has: {have or 'none'}); create it with "
         f"`auditstream tenants create {shlex.quote(tenant)} --db {shlex.quote(_shown(path))}`",
         USAGE)
