"""Time-sortable event ids: ``evt_`` + a 26-character ULID (Crockford base32).

Hand-written rather than a dependency because it sits on the ingest hot path: encoding
goes through ``base64.b32encode`` and a translation table (C speed), and ids are monotonic
within a process even inside one millisecond (the random part is incremented).
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time

# RFC 4648 base32 → Crockford's alphabet, which sorts like the numbers it encodes.
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
                                b"0123456789ABCDEFGHJKMNPQRSTVWXYZ")
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def _encode(value: int) -> str:
    # 26 chars carry 130 bits; a 128-bit value in 20 bytes is 32 chars whose last 26 are it.
    return base64.b32encode(value.to_bytes(20, "big"))[6:].translate(_TO_CROCKFORD).decode()


def new_ulid(now_ms: int | None = None) -> str:
    global _last_ms, _last_rand
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            _last_rand += 1
        else:
            _last_ms = ms
            _last_rand = int.from_bytes(os.urandom(10), "big") >> 1  # room to increment
        rand = _last_rand
    return _encode((ms << 80) | rand)


def new_event_id() -> str:
    return "evt_" + new_ulid()


def new_id(prefix: str) -> str:
    return f"{prefix}_{new_ulid()}"


#: Tenant names: what ``tenants create`` accepts, and all a credential may name.
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}")


def is_valid_tenant(name: object) -> bool:
    return isinstance(name, str) and TENANT_NAME.fullmatch(name) is not None
