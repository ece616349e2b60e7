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
        """The principal of a valid token, else ``AuthenticationRequired`` (401), whatever
        the token holds: hostile headers and claims must not surface as anything else."""
        try:
            header = jwt.get_unverified_header(token)
            alg = header.get("alg")
            key: Any
            if alg == "HS256" and self.secret:
                key = self.secret
            elif alg in ASYMMETRIC and self.jwks is not None:
                key = self._jwks_key(alg, header.get("kid"))
            else:
                shown = alg if isinstance(alg, str) else type(alg).__name__
                raise AuthenticationRequired(f"tokens signed with {shown[:20]!r} are not accepted")
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
        return Principal(tenant, _scopes(claims), "jwt", str(claims.get("sub", "")))

    def _jwks_key(self, alg: str, kid: object) -> Any:
        """The JWKS key for ``alg`` (and ``kid``, when the token names one).

        Matched on the algorithm as well as the kid: a key of another type (an RSA key for
        an ES256 header) is not a key for this token, and PyJWT raises ``TypeError`` on it.
        """
        assert self.jwks is not None
        matches = [k for k in self.jwks.keys
                   if (kid is None or k.key_id == kid) and k.algorithm_name == alg
                   and k.public_key_use in (None, "sig")]
        if not matches:
            raise AuthenticationRequired(f"no key in the JWKS for the token's kid and {alg}")
        return matches[0].key

    def issue(self, claims: dict[str, Any], ttl_s: int = 3600) -> str:
        """Sign a HS256 token (for the platform-audit password login)."""
        now = int(time.time())
        return jwt.encode({"iat": now, "exp": now + ttl_s, **claims}, self.secret,
                          algorithm="HS256")


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    """Scopes from ``scope`` (OAuth 2.0: space-separated) or ``scp`` (a list, or a string).

    Anything else is refused rather than coerced: ``str()`` of an object or a number could
    spell a scope its issuer never granted.
    """
    name = "scope" if claims.get("scope") is not None else "scp"
    value = claims.get(name)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return frozenset(value)
    raise AuthenticationRequired(
        f"the {name!r} claim must be a space-separated string or a list of strings")
