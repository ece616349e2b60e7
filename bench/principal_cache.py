"""What the API-key cache saves per request: ``Catalog.authenticate_key`` timed in-process.

On a fresh database with ``--keys`` keys, each way is timed over ``--calls`` lookups of one
key (best of ``--repeat`` runs):

* ``query``: what every request did before the cache: one indexed SELECT on api_keys;
* ``miss``: the cached catalog when the entry has expired (query + remembering it);
* ``hit``: the cached catalog within the TTL (a hash and a dictionary lookup).

Prints one JSON document with microseconds per call.

    python -m bench.principal_cache --keys 1000 --calls 20000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from auditstream.auth.catalog import Catalog, hash_key


def best_us(fn: Callable[[], object], calls: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, time.perf_counter() - start)
    return round(best / calls * 1e6, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "keys.db"
        setup = Catalog(db)
        setup.create_tenant("acme")
        secrets = [setup.create_key("acme").secret for _ in range(args.keys)]
        setup.close()
        secret = secrets[len(secrets) // 2]
        assert secret is not None

        now = [0.0]
        cached = Catalog(db, clock=lambda: now[0])
        expiring = Catalog(db, clock=lambda: now.__setitem__(0, now[0] + 10) or now[0])
        plain = Catalog(db)

        def query() -> object:  # the lookup as it was before the cache
            return plain._q("SELECT id, tenant, scopes FROM api_keys "
                            "WHERE hash = ? AND revoked IS NULL", (hash_key(secret),))

        result = {
            "keys": args.keys, "calls": args.calls,
            "query_us": best_us(query, args.calls, args.repeat),
            "miss_us": best_us(lambda: expiring.authenticate_key(secret), args.calls,
                               args.repeat),
            "hit_us": best_us(lambda: cached.authenticate_key(secret), args.calls,
                              args.repeat),
        }
        for c in (cached, expiring, plain):
            c.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
