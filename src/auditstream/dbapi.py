"""The one SQLite DB-API module every part of auditstream uses: a pinned SQLite build.

auditstream ships its SQLite (sqlean-py, SQLite 3.50) instead of using whatever the
Python build links, for two reasons:

* ``verify`` must check the full-text index against the events from a read-only
  connection; ``PRAGMA integrity_check`` covers FTS5 tables only from SQLite 3.44, and on
  read-only files only from 3.45.1 (Debian 12's Python has 3.40).
* FTS5 tokenisation, the JSON functions and the planner then behave the same on every
  machine, so a search or a filter means the same thing everywhere.

Use it as ``from auditstream.dbapi import sqlite3``; never ``import sqlite3`` anywhere
else (ruff bans it): two SQLite libraries in one process working on the same file do not
see each other's POSIX locks, which can corrupt it. sqlean's loadable extensions (file
I/O among them) are switched off before any connection is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Types only: sqlean is the stdlib module's API over another build, without stubs.
    import sqlite3  # noqa: TID251
else:
    import sqlean as sqlite3

    sqlite3.extensions.disable_all()

__all__ = ["sqlite3"]
