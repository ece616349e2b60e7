"""JWT bearer tokens: HS256 with a shared secret, or RS256/ES256/EdDSA against a JWKS file.

The tenant comes from a configurable claim (default ``org_id``), scopes from ``scope``
(space-separated, OAuth 2.0 style) or ``scp`` (a list).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt

from ..errors import AuthenticationRequired
from .principal import Principal

ASYMMETRIC = ["RS256", "ES256", "EdDSA"]


class TokenVerifier:
    def __init__(self, *, secret: str = "", jwks_path: str = "", tenant_claim: str = "org_id",
                 audience: str = ""):
        self.secret = secret
        self.tenant_claim = tenant_claim
        self.audience = audience or None
        self.jwks: jwt.PyJWKSet | None = None
        if jwks_path:
            self.jwks = jwt.PyJWKSet.from_json(Path(jwks_path).read_text())

    @property
    def enabled(self) -> bool:
        return bool(self.secret) or self.jwks is not None

    @staticmethod
    def looks_like_jwt(token: str) -> bool:
        return token.count(".") == 2 and token.startswith("eyJ")

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            alg = header.get("alg")
            key: Any
            if alg == "HS256" and self.secret:
                key = self.secret
            elif alg in ASYMMETRIC and self.jwks is not None:
                kid = header.get("kid")
                matches = [k for k in self.jwks.keys if kid is None or k.key_id == kid]
                if not matches:
                    raise AuthenticationRequired("no key in the JWKS matches the token's kid")
                key = matches[0].key
            else:
                raise AuthenticationRequired(f"tokens signed with {alg!r} are not accepted")
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=self.audience,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationRequired("token has expired") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationRequired(f"invalid token: {exc}") from None
        tenant = claims.get(self.tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise AuthenticationRequired(f"token has no {self.tenant_claim!r} claim")
        scope = claims.get("scope", claims.get("scp", ""))
        scopes = scope.split() if isinstance(scope, str) else [str(s) for s in scope]
        return Principal(tenant, frozenset(scopes), "jwt", str(claims.get("sub", "")))

    def issue(self, claims: dict[str, Any], ttl_s: int = 3600) -> str:
        """Sign a HS256 token (for the platform-audit password login)."""
        now = int(time.time())
        return jwt.encode({"iat": now, "exp": now + ttl_s, **claims}, self.secret,
                          algorithm="HS256")
