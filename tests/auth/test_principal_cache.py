"""API keys across processes: each process remembers a key for a short TTL instead of
reading the api_keys table on every request, so a key revoked by another process (another
worker, ``auditstream keys revoke``) stops working there within that TTL (documented: at
most 5 s). Two Catalog instances on one file stand for two processes; the clock is
injected, nothing sleeps."""

from __future__ import annotations

from pathlib import Path

from auditstream.auth.catalog import PRINCIPAL_TTL_S, Catalog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def secret_of(catalog: Catalog, tenant: str) -> tuple[str, str]:
    key = catalog.create_key(tenant)
    assert key.secret is not None
    return key.id, key.secret


def test_a_key_revoked_by_another_process_stops_working_within_the_ttl(db_path: Path) -> None:
    assert PRINCIPAL_TTL_S <= 5
    clock = Clock()
    cli, worker = Catalog(db_path), Catalog(db_path, clock=clock)
    cli.create_tenant("acme")
    kid, secret = secret_of(cli, "acme")
    principal = worker.authenticate_key(secret)
    assert principal is not None and principal.subject == kid
    cli.revoke_key(kid)
    # Within the TTL the worker answers from what it read: no query per request.
    clock.now += PRINCIPAL_TTL_S * 0.99
    assert worker.authenticate_key(secret) == principal
    # After it, the worker reads the table again and refuses the key.
    clock.now += PRINCIPAL_TTL_S * 0.02
    assert worker.authenticate_key(secret) is None
    # ... and keeps refusing it (a refusal is never cached as an acceptance).
    clock.now += PRINCIPAL_TTL_S * 10
    assert worker.authenticate_key(secret) is None


def test_revoking_through_the_same_catalog_is_immediate(db_path: Path) -> None:
    catalog = Catalog(db_path, clock=Clock())
    catalog.create_tenant("acme")
    kid, secret = secret_of(catalog, "acme")
    other_kid, other = secret_of(catalog, "acme")
    assert catalog.authenticate_key(secret) is not None
    assert catalog.authenticate_key(other) is not None
    catalog.revoke_key(kid)
    assert catalog.authenticate_key(secret) is None
    assert catalog.authenticate_key(other) is not None


def test_unknown_keys_are_not_remembered_and_do_not_evict_known_ones(db_path: Path) -> None:
    clock = Clock()
    cli, worker = Catalog(db_path), Catalog(db_path, clock=clock, max_cached=4)
    cli.create_tenant("acme")
    kid, secret = secret_of(cli, "acme")
    assert worker.authenticate_key(secret) is not None
    # A caller spraying made-up keys: each is a query and a refusal, never an entry.
    for i in range(50):
        assert worker.authenticate_key(f"sk_live_{i:040d}") is None
    cli.revoke_key(kid)
    assert worker.authenticate_key(secret) is not None  # still cached: not evicted


def test_the_cache_is_bounded(db_path: Path) -> None:
    clock = Clock()
    cli, worker = Catalog(db_path), Catalog(db_path, clock=clock, max_cached=2)
    cli.create_tenant("acme")
    keys = [secret_of(cli, "acme") for _ in range(3)]
    for _, secret in keys:
        assert worker.authenticate_key(secret) is not None
    for kid, _ in keys:
        cli.revoke_key(kid)
    # The least recently used key was dropped, so it is read again (and refused); the two
    # the bound kept are still remembered until their TTL.
    assert worker.authenticate_key(keys[0][1]) is None
    assert worker.authenticate_key(keys[2][1]) is not None


def test_the_cache_holds_key_hashes_never_secrets(db_path: Path) -> None:
    catalog = Catalog(db_path, clock=Clock())
    catalog.create_tenant("acme")
    _, secret = secret_of(catalog, "acme")
    assert catalog.authenticate_key(secret) is not None
    assert secret not in repr(vars(catalog))
    assert secret[len("sk_live_"):] not in repr(vars(catalog))
