"""RFC 8785 (JSON Canonicalization Scheme) serialisation of audit events.

Guarantee: for every input ``canonical_bytes(x) == rfc8785.dumps(x)`` byte for byte, or both
refuse it. The ``rfc8785`` package is the reference; ``orjson`` is used only when the input is
provably inside the subset where the two serialisers agree, because orjson is an order of
magnitude faster and events are hashed on every ingest.

Where orjson and JCS disagree, and why the fast path refuses those inputs:

* Key order. JCS sorts object keys by UTF-16 code units; orjson sorts by UTF-8 bytes (= code
  points). The orders differ only when a key holds a character in U+E000..U+FFFF (encoded above
  astral characters in UTF-8, below their surrogate pairs in UTF-16).
* Floats. JCS uses the ECMAScript Number-to-String rules: integral values have no ``.0``
  (``1.0`` -> ``1``, ``-0.0`` -> ``0``), fixed notation reaches down to 1e-6 and up to 1e21.
  orjson prints ``1.0``, ``-0.0``, ``1e-6`` and ``1e+16``. The two agree on finite,
  non-integral floats with 1e-5 <= |x| < 1e15 (non-integral doubles are < 2**52 anyway).
* Integers. JCS (and ``rfc8785``) only accept |n| <= 2**53 - 1; orjson accepts 64-bit.
* Types. orjson natively serialises dataclasses, datetimes, enums, subclasses...; JCS input is
  plain JSON, so anything but exact ``dict``/``list``/``tuple``/``str``/``int``/``float``/
  ``bool``/``None`` goes to the reference implementation (which accepts or rejects it).

String escaping is identical in both (short escapes for ``\\b\\f\\n\\r\\t\\"\\\\``, lowercase
``\\u00xx`` for other C0 controls, everything else raw UTF-8); lone surrogates make orjson
raise, in which case the reference implementation raises its own error.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson
import rfc8785

__all__ = ["CanonicalizationError", "canonical_bytes", "canonical_json_bytes", "numbers_as_read"]

CanonicalizationError = rfc8785.CanonicalizationError
"""Raised (a ``ValueError``) for input JCS cannot represent: NaN/inf, ints beyond 2**53 - 1,
non-string keys, lone surrogates, unsupported types, cyclic or absurdly deep nesting."""

_JS_SAFE_INT: Final = 2**53 - 1
# orjson refuses nesting deeper than 255; stopping a little earlier keeps its error out of the
# fast path and also ends the walk on cyclic input.
_MAX_FAST_DEPTH: Final = 250
# Characters whose UTF-8 order differs from their UTF-16 order relative to astral characters.
_SORT_HAZARD: Final = re.compile("[\ue000-\uffff]")
_ORJSON_OPTS: Final = orjson.OPT_SORT_KEYS
_STRICT_OPTS: Final = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


def numbers_as_read(value: Any) -> Any:
    """``value`` as a JSON reader parsed it from canonical bytes, with each integer beyond
    ±(2**53 - 1) back as the double it stands for. JCS prints the double 1e17 as
    ``100000000000000000``, which a reader takes for an integer that ``canonical_bytes``
    refuses (the server refuses such integers at ingest, so only doubles print so)."""
    t = type(value)
    if t is int:
        return float(value) if abs(value) > _JS_SAFE_INT else value
    if t is dict:
        return {k: numbers_as_read(v) for k, v in value.items()}
    if t is list:
        return [numbers_as_read(v) for v in value]
    return value


def canonical_bytes(event: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of a JSON value (normally an event ``dict``).

    The result is byte-identical to ``rfc8785.dumps(event)``; it is stable across processes,
    Python versions and dict insertion order, so it is safe to hash and sign.

    Raises:
        CanonicalizationError: the value has no JCS representation.
    """
    if _fast_path_ok(event, 0):
        try:
            return orjson.dumps(event, option=_ORJSON_OPTS)
        except orjson.JSONEncodeError:
            # Lone surrogates are the only expected cause; the reference path reports them
            # with the library's own error type.
            pass
    try:
        return rfc8785.dumps(event)
    except RecursionError as exc:
        raise CanonicalizationError("value is nested too deeply or is cyclic") from exc
    except UnicodeEncodeError as exc:
        # rfc8785 0.1.4 leaks this for lone surrogates in object keys (values are wrapped).
        raise CanonicalizationError("input contains non-UTF-8 codepoints") from exc


# Any number token orjson may print differently from JCS: an integral float ("1.0",
# "-0.0"), an exponent, 16+ digits, or |x| < 1e-5. Every number in orjson's compact output
# follows ':' '[' or ','; the same bytes inside a string only cause a needless fall back to
# the exact path, never a wrong answer. (Checking each candidate in Python instead was
# slower: bodies hold ~10 digit-dot runs each, in versions, addresses and timestamps.)
# Written with the first digit and a lookahead pulled out of the alternation (the same
# language as ``[:\[,]-?(?:\d{16}|\d+\.0[,\]}]|\d+(?:\.\d+)?[eE]|0\.00000)``): re then
# fails fast at the many separators not followed by a number, ~1/3 faster per body.
_UNSAFE_NUMBER: Final = re.compile(
    rb"[:\[,](?=-?\d)-?\d(?:\d{15}|\d*\.0[,\]}]|\d*(?:\.\d+)?[eE])|[:\[,]-?0\.00000")


def _unsafe_number(out: bytes) -> bool:
    return _UNSAFE_NUMBER.search(out) is not None


def _order_hazard(out: bytes) -> bool:
    """UTF-8 lead bytes of U+E000..U+FFFF, where UTF-8 and UTF-16 key orders differ
    (``in`` is a C scan, several times faster than a character-class regex)."""
    return b"\xee" in out or b"\xef" in out


def canonical_json_bytes(value: dict[str, Any]) -> bytes:
    """``canonical_bytes`` for a value parsed from JSON (plain dict/list/str/int/float/bool/None).

    Checks orjson's sorted output instead of walking the value first: one C-level regex
    search instead of a Python walk, which halves the cost on the ingest hot path. Values
    holding other types (datetimes, enums, UUIDs…) must go through ``canonical_bytes``.
    """
    try:
        out = orjson.dumps(value, option=_STRICT_OPTS)
    except orjson.JSONEncodeError:
        return canonical_bytes(value)
    if _unsafe_number(out) or _order_hazard(out):
        # Integral floats (``"latency_ms": 16.0``) are common and JCS prints them as ints:
        # print them as ints too and look again before the slow reference path.
        as_ints = _integral_floats_as_ints(value)
        out = orjson.dumps(as_ints, option=_STRICT_OPTS)
        if _unsafe_number(out) or _order_hazard(out):
            return canonical_bytes(value)
    return out


def _integral_floats_as_ints(value: Any) -> Any:
    t = type(value)
    if t is float:
        return int(value) if value.is_integer() and abs(value) <= _JS_SAFE_INT else value
    if t is dict:
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    if t is list:
        return [_integral_floats_as_ints(v) for v in value]
    return value


def _fast_path_ok(value: Any, depth: int) -> bool:
    """True when orjson with sorted keys is guaranteed to emit exactly the JCS bytes."""
    t = type(value)
    if t is dict:
        if depth >= _MAX_FAST_DEPTH:
            return False
        for key, item in value.items():
            if type(key) is not str:
                return False
            if not key.isascii() and _SORT_HAZARD.search(key):
                return False
            ti = type(item)
            # Inline the common scalar cases: most event fields are strings.
            if ti is str or ti is bool or item is None:
                continue
            if not _fast_path_ok(item, depth + 1):
                return False
        return True
    if t is list or t is tuple:
        if depth >= _MAX_FAST_DEPTH:
            return False
        for item in value:
            ti = type(item)
            if ti is str or ti is bool or item is None:
                continue
            if not _fast_path_ok(item, depth + 1):
                return False
        return True
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return -_JS_SAFE_INT <= value <= _JS_SAFE_INT
    if t is float:
        # NaN and infinities fail the range test and are rejected by the reference path.
        return 1e-5 <= abs(value) < 1e15 and not value.is_integer()
    return False
