"""Time-sortable event ids: ``evt_`` + a 26-character ULID (Crockford base32).

Hand-written rather than a dependency because it is twenty lines and sits on the
ingest hot path; ids are monotonic within a process even inside one millisecond.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_ulid(now_ms: int | None = None) -> str:
    global _last_ms, _last_rand
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            _last_rand += 1
        else:
            _last_ms = ms
            _last_rand = int.from_bytes(os.urandom(10), "big") >> 1  # room to increment
        rand = _last_rand
    return _encode(ms, 10) + _encode(rand, 16)


def new_event_id() -> str:
    return "evt_" + new_ulid()


def new_id(prefix: str) -> str:
    return f"{prefix}_{new_ulid()}"
