"""The authenticated caller, whatever the credential was."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PermissionDenied

SCOPES = ("events:write", "events:read", "admin")
DEFAULT_SCOPES = ("events:write", "events:read")


@dataclass(frozen=True)
class Principal:
    tenant: str
    scopes: frozenset[str]
    kind: str  # "api_key", "jwt", "user" (a console session) or "viewer" (a viewer token)
    subject: str  # key id, JWT sub, user name or viewer token id
    #: A viewer token's fixed ``q`` filter: every read it makes is ANDed with it
    #: (``api.deps.scope_filter``); ``None`` for every other credential.
    where: str | None = None

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def require(self, scope: str) -> None:
        if not self.has(scope):
            raise PermissionDenied(f"this credential lacks the {scope!r} scope",
                                   required_scope=scope)
