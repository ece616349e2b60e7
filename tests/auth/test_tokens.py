"""JWT bearer tokens: HS256 with a secret, RS256/ES256/EdDSA against a JWKS file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

SECRET = "s3cret-for-tests-only-0123456789abcdef"


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "u1", "org_id": "acme", "scope": "events:read events:write",
            "exp": int(time.time()) + 600, **extra}


def get(srv: Any, token: str) -> int:
    return int(srv.client().get("/v1/events", headers={"Authorization": f"Bearer {token}"})
               .status_code)


def test_hs256(make_server: Any) -> None:
    srv = make_server(jwt_secret=SECRET)
    srv.key("acme")
    assert get(srv, jwt.encode(claims(), SECRET, algorithm="HS256")) == 200
    assert get(srv, jwt.encode(claims(), "wrong-secret-wrong-secret-wrong!!",
                               algorithm="HS256")) == 401
    assert get(srv, jwt.encode(claims(exp=int(time.time()) - 10), SECRET,
                               algorithm="HS256")) == 401
    assert get(srv, jwt.encode(claims(scope="events:write"), SECRET, algorithm="HS256")) == 403
    no_tenant = claims()
    del no_tenant["org_id"]
    assert get(srv, jwt.encode(no_tenant, SECRET, algorithm="HS256")) == 401
    # Tenant comes from the claim: events written with the token are the claim tenant's.
    tok = jwt.encode(claims(), SECRET, algorithm="HS256")
    c = srv.client()
    c.post("/v1/events", content=b'{"type":"x"}', headers={"Authorization": f"Bearer {tok}"})
    assert len(srv.client(srv.key("acme")).get("/v1/events").json()["data"]) == 1
    assert srv.client(srv.key("globex")).get("/v1/events").json()["data"] == []


def test_jwks_rs256_es256_eddsa(make_server: Any, tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    jwks = {"keys": [
        {**json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "r1", "alg": "RS256"},
        {**json.loads(ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "e1", "alg": "ES256"},
        {**json.loads(OKPAlgorithm.to_jwk(ed_key.public_key())), "kid": "d1", "alg": "EdDSA"},
    ]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    srv = make_server(jwt_jwks=str(path), jwt_tenant_claim="tenant")
    srv.key("acme")
    c = claims(tenant="acme")
    assert get(srv, jwt.encode(c, rsa_key, algorithm="RS256", headers={"kid": "r1"})) == 200
    assert get(srv, jwt.encode(c, ec_key, algorithm="ES256", headers={"kid": "e1"})) == 200
    assert get(srv, jwt.encode(c, ed_key, algorithm="EdDSA", headers={"kid": "d1"})) == 200
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert get(srv, jwt.encode(c, other, algorithm="RS256", headers={"kid": "r1"})) == 401
    assert get(srv, jwt.encode(c, rsa_key, algorithm="RS256", headers={"kid": "zz"})) == 401
    # HS256 is refused when no secret is configured (no algorithm confusion).
    assert get(srv, jwt.encode(c, "x" * 32, algorithm="HS256")) == 401
