"""Tenants, API keys and users, kept in the same SQLite file as the events.

API keys are ``sk_live_`` + 40 random base62 characters (~238 bits); only their SHA-256
is stored, so a key is shown once, at creation. User passwords are hashed with pwdlib
(Argon2).

A catalog remembers each API key it accepted for ``PRINCIPAL_TTL_S`` (2 s) rather than
reading the table on every request. Every process of a server has its own catalog, so a
key revoked elsewhere (another worker, ``auditstream keys revoke``) stops working in this
process within those 2 s; revoked through this catalog, at once. Only accepted keys are
remembered, by their SHA-256 (never the secret), at most ``PRINCIPAL_CACHE_SIZE`` of them:
an unknown key is read (and refused) each time, and made-up keys cannot evict real ones.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cachetools import TTLCache
from pwdlib import PasswordHash

from ..dbapi import sqlite3
from ..errors import Conflict, InvalidRequest, NotFound
from ..model.ids import is_valid_tenant, new_id
from .principal import DEFAULT_SCOPES, SCOPES, Principal

KEY_PREFIX = "sk_live_"
#: Console sessions (the HttpOnly cookie's value) and viewer tokens: random like keys,
#: stored as SHA-256, told apart from keys by their prefix.
SESSION_PREFIX = "ss_"
VIEWER_PREFIX = "vt_"
#: How long a catalog trusts what it read about an API key: the bound on how long a key
#: revoked by another process keeps working here (documented as "within 5 s").
PRINCIPAL_TTL_S = 2.0
#: Most API keys a catalog remembers at once (least recently used dropped first).
PRINCIPAL_CACHE_SIZE = 4096
_ALPHABET = string.ascii_letters + string.digits

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    name TEXT PRIMARY KEY,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants(name),
    hash BLOB NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    scopes TEXT NOT NULL,
    name TEXT,
    created INTEGER NOT NULL,
    revoked INTEGER
);
CREATE TABLE IF NOT EXISTS users (
    tenant TEXT NOT NULL REFERENCES tenants(name),
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    user_id INTEGER,
    created INTEGER NOT NULL,
    PRIMARY KEY (tenant, username)
);
CREATE UNIQUE INDEX IF NOT EXISTS users_name ON users(username);
CREATE TABLE IF NOT EXISTS sessions (
    hash BLOB PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants(name),
    username TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS viewer_tokens (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants(name),
    hash BLOB NOT NULL UNIQUE,
    q TEXT,
    created_by TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant: str
    scopes: tuple[str, ...]
    hint: str
    created: int
    revoked: int | None = None
    name: str | None = None
    secret: str | None = None  # only right after creation

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id, "tenant": self.tenant, "scopes": list(self.scopes),
            "hint": self.hint, "created": self.created, "revoked": self.revoked,
            "name": self.name,
        }
        if self.secret is not None:
            d["key"] = self.secret
        return d


def hash_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


#: The shortest password a new user may get (the console's and the compat profiles' login).
MIN_PASSWORD = 12


def check_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise InvalidRequest(f"unknown scope(s) {', '.join(bad)}; valid: {', '.join(SCOPES)}")
    return tuple(dict.fromkeys(scopes))


class Catalog:
    """Tenants, keys and users. Thread-safe; cheap enough to call per request."""

    def __init__(
        self, path: str | Path, *, clock: Callable[[], float] = time.monotonic,
        max_cached: int = PRINCIPAL_CACHE_SIZE, wall: Callable[[], float] = time.time,
    ):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                     timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._wall = wall  # the expiry of sessions and viewer tokens (injected by tests)
        self._hasher = PasswordHash.recommended()
        # Key hash -> principal; read, filled and purged under _lock, with the query, so
        # a revocation through this catalog cannot race a lookup into a stale entry.
        self._principals: TTLCache[bytes, Principal] = TTLCache(
            maxsize=max_cached, ttl=PRINCIPAL_TTL_S, timer=clock)

    def close(self) -> None:
        self._conn.close()

    def _q(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- tenants -----------------------------------------------------------------

    def create_tenant(self, name: str) -> str:
        if not is_valid_tenant(name):
            raise InvalidRequest(
                f"invalid tenant name {name!r}: letters, digits, '_', '-', '.', up to 63"
            )
        try:
            self._q("INSERT INTO tenants(name, created) VALUES (?, ?)", (name, int(time.time())))
        except sqlite3.IntegrityError:
            raise Conflict(f"tenant {name!r} already exists") from None
        return name

    def ensure_tenant(self, name: str) -> str:
        """Create the tenant unless it exists (safe against a concurrent create)."""
        if not is_valid_tenant(name):
            raise InvalidRequest(f"invalid tenant name {name!r}")
        self._q("INSERT OR IGNORE INTO tenants(name, created) VALUES (?, ?)",
                (name, int(time.time())))
        return name

    def tenant_exists(self, name: str) -> bool:
        return bool(self._q("SELECT 1 FROM tenants WHERE name = ?", (name,)))

    def tenants(self) -> list[str]:
        return [r[0] for r in self._q("SELECT name FROM tenants ORDER BY name")]

    # -- API keys ----------------------------------------------------------------

    def create_key(
        self, tenant: str, scopes: list[str] | tuple[str, ...] = DEFAULT_SCOPES,
        name: str | None = None,
    ) -> ApiKey:
        if not self.tenant_exists(tenant):
            raise NotFound(f"no tenant {tenant!r}")
        scopes = check_scopes(list(scopes) or list(DEFAULT_SCOPES))
        secret = KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(40))
        key = ApiKey(new_id("key"), tenant, scopes, secret[:12] + "…", int(time.time()),
                     name=name, secret=secret)
        self._q(
            "INSERT INTO api_keys(id, tenant, hash, hint, scopes, name, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key.id, tenant, hash_key(secret), key.hint, " ".join(scopes), name, key.created),
        )
        return key

    def keys(self, tenant: str | None = None) -> list[ApiKey]:
        sql = "SELECT id, tenant, scopes, hint, created, revoked, name FROM api_keys"
        rows = (self._q(sql + " WHERE tenant = ? ORDER BY created", (tenant,)) if tenant
                else self._q(sql + " ORDER BY tenant, created"))
        return [ApiKey(r[0], r[1], tuple(r[2].split()), r[3], r[4], r[5], r[6]) for r in rows]

    def revoke_key(self, key_id: str) -> None:
        with self._lock:
            cur = self._conn.execute(
                "UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL",
                (int(time.time()), key_id),
            )
            for digest in [d for d, p in self._principals.items() if p.subject == key_id]:
                del self._principals[digest]
        if cur.rowcount == 0:
            raise NotFound(f"no active key {key_id!r}")

    def authenticate_key(self, secret: str) -> Principal | None:
        """The key's principal, or None if it is unknown or revoked (see the module's
        docstring for how long a revocation by another process takes to reach here)."""
        digest = hash_key(secret)
        with self._lock:
            principal = self._principals.get(digest)
            if principal is not None:
                return principal
            rows = self._conn.execute(
                "SELECT id, tenant, scopes FROM api_keys WHERE hash = ? AND revoked IS NULL",
                (digest,),
            ).fetchall()
            if not rows:
                return None
            kid, tenant, scopes = rows[0]
            principal = Principal(tenant, frozenset(scopes.split()), "api_key", kid)
            self._principals[digest] = principal
            return principal

    # -- users (password login: the console, and the platform-audit profile) -------

    def create_user(
        self, tenant: str, username: str, password: str,
        scopes: list[str] | tuple[str, ...] = ("events:read",), user_id: int | None = None,
    ) -> None:
        if not self.tenant_exists(tenant):
            raise NotFound(f"no tenant {tenant!r}")
        scopes = check_scopes(list(scopes))
        try:
            self._q(
                "INSERT INTO users(tenant, username, password_hash, scopes, user_id, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (tenant, username, self._hasher.hash(password), " ".join(scopes), user_id,
                 int(time.time())),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"user {username!r} already exists") from None

    def authenticate_user(self, username: str, password: str) -> Principal | None:
        rows = self._q(
            "SELECT tenant, password_hash, scopes FROM users WHERE username = ?", (username,)
        )
        if not rows:
            # Hash anyway so timing does not tell which usernames exist.
            self._hasher.hash(password)
            return None
        tenant, pw_hash, scopes = rows[0]
        if not self._hasher.verify(password, pw_hash):
            return None
        return Principal(tenant, frozenset(scopes.split()), "user", username)

    def users(self, tenant: str) -> list[dict[str, Any]]:
        rows = self._q("SELECT username, scopes, created FROM users WHERE tenant = ? "
                       "ORDER BY username", (tenant,))
        return [{"username": r[0], "scopes": r[1].split(), "created": r[2]} for r in rows]

    # -- console sessions -----------------------------------------------------------

    def create_session(self, user: Principal, seconds: int) -> tuple[str, int]:
        """A new session of a signed-in user: (secret for the cookie, expiry in Unix s)."""
        secret = _random_secret(SESSION_PREFIX)
        now = int(self._wall())
        self._q("DELETE FROM sessions WHERE expires <= ?", (now,))  # keep the table small
        self._q("INSERT INTO sessions(hash, tenant, username, scopes, created, expires) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (hash_key(secret), user.tenant, user.subject, " ".join(sorted(user.scopes)),
                 now, now + seconds))
        return secret, now + seconds

    def authenticate_session(self, secret: str) -> Principal | None:
        """The session's user, or None once it expired or was ended. The user's scopes are
        read afresh, so a deleted user's session stops at once."""
        rows = self._q(
            "SELECT s.tenant, s.username, u.scopes FROM sessions s JOIN users u "
            "ON u.tenant = s.tenant AND u.username = s.username "
            "WHERE s.hash = ? AND s.expires > ?", (hash_key(secret), int(self._wall())))
        if not rows:
            return None
        tenant, username, scopes = rows[0]
        return Principal(tenant, frozenset(scopes.split()), "user", username)

    def end_session(self, secret: str) -> None:
        self._q("DELETE FROM sessions WHERE hash = ? OR expires <= ?",
                (hash_key(secret), int(self._wall())))

    # -- viewer tokens ---------------------------------------------------------------

    def create_viewer_token(self, tenant: str, q: str | None, seconds: int,
                            created_by: str) -> dict[str, Any]:
        """A read-only token of ``tenant``, limited to the ``q`` filter (None: the whole
        tenant), valid ``seconds``. Shown once, stored as SHA-256."""
        if not self.tenant_exists(tenant):
            raise NotFound(f"no tenant {tenant!r}")
        secret = _random_secret(VIEWER_PREFIX)
        token_id, now = new_id("vt"), int(self._wall())
        self._q("DELETE FROM viewer_tokens WHERE expires <= ?", (now,))
        self._q("INSERT INTO viewer_tokens(id, tenant, hash, q, created_by, created, expires) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token_id, tenant, hash_key(secret), q, created_by, now, now + seconds))
        return {"id": token_id, "token": secret, "tenant": tenant, "q": q,
                "expires": now + seconds}

    def revoke_viewer_token(self, tenant: str, token_id: str) -> bool:
        """End a viewer token of ``tenant`` at once; False if there is no such live one."""
        with self._lock:
            cur = self._conn.execute(
                "DELETE FROM viewer_tokens WHERE id = ? AND tenant = ? AND expires > ?",
                (token_id, tenant, int(self._wall())))
        return cur.rowcount > 0

    def authenticate_viewer(self, secret: str) -> Principal | None:
        rows = self._q("SELECT id, tenant, q FROM viewer_tokens WHERE hash = ? AND expires > ?",
                       (hash_key(secret), int(self._wall())))
        if not rows:
            return None
        token_id, tenant, q = rows[0]
        return Principal(tenant, frozenset({"events:read"}), "viewer", token_id, where=q)


def _random_secret(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(40))
