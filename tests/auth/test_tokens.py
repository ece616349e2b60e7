"""JWT bearer tokens: HS256 with a secret, RS256/ES256/EdDSA against a JWKS file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
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


# ------------------------------------------------------------------ hostile tokens

def b64(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forged(header: Any, payload: Any, secret: str | None = SECRET) -> str:
    """A token with any header and payload (JSON with NaN allowed), HS256-signed with
    ``secret`` so that only the part under test is wrong."""
    import hashlib
    import hmac

    def seg(part: Any) -> str:
        return b64(part if isinstance(part, bytes) else json.dumps(part).encode())

    head = f"{seg(header)}.{seg(payload)}"
    sig = hmac.new((secret or "x").encode(), head.encode(), hashlib.sha256).digest()
    return f"{head}.{b64(sig)}"


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {"rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec": ec.generate_private_key(ec.SECP256R1()),
            "ec384": ec.generate_private_key(ec.SECP384R1()),
            "ed": ed25519.Ed25519PrivateKey.generate()}


@pytest.fixture
def jwks_server(make_server: Any, tmp_path: Path, keys: dict[str, Any]) -> Any:
    # RSA first and without "alg": the key a token's header could try to misuse.
    jwks = {"keys": [
        {**json.loads(RSAAlgorithm.to_jwk(keys["rsa"].public_key())), "kid": "r1"},
        {**json.loads(ECAlgorithm.to_jwk(keys["ec"].public_key())), "kid": "e1"},
        {**json.loads(ECAlgorithm.to_jwk(keys["ec384"].public_key())), "kid": "e384"},
        {**json.loads(OKPAlgorithm.to_jwk(keys["ed"].public_key())), "kid": "d1"},
    ]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    srv = make_server(jwt_jwks=str(path), jwt_secret=SECRET)
    srv.key("acme")
    return srv


def hostile_tokens(keys: dict[str, Any]) -> dict[str, str]:
    c = claims()
    now = int(time.time())
    return {
        # a key of one type presented for an algorithm of another (was a 500)
        "ES256 header, RSA kid": jwt.encode(c, keys["ec"], algorithm="ES256",
                                            headers={"kid": "r1"}),
        "ES256 header, no kid, unknown key": jwt.encode(
            c, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"),
        "RS256 header, EC kid": jwt.encode(c, keys["rsa"], algorithm="RS256",
                                           headers={"kid": "e1"}),
        "EdDSA header, RSA kid": jwt.encode(c, keys["ed"], algorithm="EdDSA",
                                            headers={"kid": "r1"}),
        "ES256 header, P-384 kid": jwt.encode(c, keys["ec"], algorithm="ES256",
                                              headers={"kid": "e384"}),
        "RS256 forged with HMAC": forged({"alg": "RS256", "kid": "r1"}, c),
        # scope claims that are not space-separated strings or lists of strings (was a 500)
        "scope number": jwt.encode(claims(scope=5), SECRET, algorithm="HS256"),
        "scope object": jwt.encode(claims(scope={"events:read": True}), SECRET,
                                   algorithm="HS256"),
        "scope list of numbers": jwt.encode(claims(scope=[1, 2]), SECRET, algorithm="HS256"),
        "scope list with null": jwt.encode(claims(scope=["events:read", None]), SECRET,
                                           algorithm="HS256"),
        "scp number": jwt.encode({**claims(), "scp": 7, "scope": None}, SECRET,
                                 algorithm="HS256"),
        "scope number, RS256": jwt.encode(claims(scope=5), keys["rsa"], algorithm="RS256",
                                          headers={"kid": "r1"}),
        # headers
        "kid number": forged({"alg": "HS256", "kid": 5}, c),
        "kid list": forged({"alg": "RS256", "kid": ["r1"]}, c),
        "alg none": forged({"alg": "none"}, c)[:-43],
        "alg none, signed": forged({"alg": "none"}, c),
        "alg list": forged({"alg": ["HS256"]}, c),
        "alg object": forged({"alg": {"HS256": 1}}, c),
        "alg missing": forged({"typ": "JWT"}, c),
        "alg HS512": forged({"alg": "HS512"}, c),
        "crit header": forged({"alg": "HS256", "crit": ["exp"]}, c),
        "header is a list": "eyJ" + forged(["alg"], c)[3:],
        "header bad base64": "eyJ!!!." + forged({"alg": "HS256"}, c).split(".", 1)[1],
        "header not json": "eyJ" + b64(b'"alg": "HS256"}')[3:] + ".e30.sig",
        "payload not json": forged({"alg": "HS256"}, b"{not json"),
        "payload a list": forged({"alg": "HS256"}, [1, 2]),
        "payload a string": forged({"alg": "HS256"}, "acme"),
        "signature bad base64": forged({"alg": "HS256"}, c).rsplit(".", 1)[0] + ".!!!",
        "huge token": forged({"alg": "HS256", "pad": "x" * 40_000}, c, secret="wrong"),
        # claims
        "exp infinite": forged({"alg": "HS256"}, b'{"exp": Infinity, "org_id": "acme"}'),
        "exp NaN": forged({"alg": "HS256"}, b'{"exp": NaN, "org_id": "acme"}'),
        "exp 1e400": forged({"alg": "HS256"}, b'{"exp": 1e400, "org_id": "acme"}'),
        "exp string": forged({"alg": "HS256"}, {**c, "exp": "soon"}),
        "iat infinite": forged({"alg": "HS256"},
                               f'{{"exp": {now + 60}, "iat": Infinity, "org_id": "acme"}}'
                               .encode()),
        "nbf 10^400": forged({"alg": "HS256"},
                             f'{{"exp": {now + 60}, "nbf": 1{"0" * 400}, "org_id": "acme"}}'
                             .encode()),
        "tenant number": jwt.encode(claims(org_id=5), SECRET, algorithm="HS256"),
        "tenant object": jwt.encode(claims(org_id={"a": 1}), SECRET, algorithm="HS256"),
    }


def test_hostile_tokens_are_401_problems(jwks_server: Any, keys: dict[str, Any]) -> None:
    failures: dict[tuple[str, str], Any] = {}
    c = jwks_server.client()
    for name, token in hostile_tokens(keys).items():
        for route, shape in (("/v1/events", "application/problem+json"),
                             ("/compat/turen/api/v1/events", "application/json")):
            try:
                r = c.get(route, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as exc:  # a 500 closes the connection
                failures[name, route] = repr(exc)
                c = jwks_server.client()
                continue
            if r.status_code != 401 or r.headers["content-type"] != shape:
                failures[name, route] = (r.status_code, r.text[:120])
    assert failures == {}


@pytest.mark.parametrize(("scope", "reason"), [
    (5, "'scope' claim must be"), ({"events:read": True}, "'scope' claim must be"),
    ([1, 2], "'scope' claim must be"), (["events:read", None], "'scope' claim must be"),
])
def test_scope_claim_errors_say_what_is_wrong(jwks_server: Any, scope: Any,
                                              reason: str) -> None:
    token = jwt.encode(claims(scope=scope), SECRET, algorithm="HS256")
    r = jwks_server.client().get("/v1/events", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert reason in r.json()["detail"]


def test_scopes_as_string_or_list_of_strings_still_work(jwks_server: Any,
                                                        keys: dict[str, Any]) -> None:
    c = jwks_server.client()
    for extra in ({"scope": "events:read"}, {"scope": ["events:read"]},
                  {"scope": None, "scp": ["events:read"]}, {"scope": None, "scp": "events:read"}):
        token = jwt.encode({**claims(), **extra}, SECRET, algorithm="HS256")
        r = c.get("/v1/events", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, (extra, r.text)
    token = jwt.encode(claims(scope="events:read"), keys["ec384"], algorithm="ES384",
                       headers={"kid": "e384"})
    # ES384 is not an accepted algorithm, even with a matching key.
    assert get(jwks_server, token) == 401
    for key, alg, kid in ((keys["rsa"], "RS256", "r1"), (keys["ec"], "ES256", "e1"),
                          (keys["ed"], "EdDSA", "d1"), (keys["ec"], "ES256", None)):
        token = jwt.encode(claims(), key, algorithm=alg,
                           headers={"kid": kid} if kid else None)
        assert get(jwks_server, token) == 200, alg
