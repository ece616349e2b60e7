"""canonical_bytes must equal rfc8785.dumps byte for byte, fast path or not."""

from __future__ import annotations

import enum
import math
import re
from collections import OrderedDict
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from auditstream.integrity import canonical
from auditstream.integrity.canonical import CanonicalizationError, canonical_bytes

SAFE_INT = 2**53 - 1

# Any Unicode scalar value (no lone surrogates), so astral characters and U+E000..U+FFFF -- the
# range where UTF-8 and UTF-16 key orders disagree -- are both drawn.
_chars = st.characters(codec="utf-8")
_text = st.text(_chars, max_size=12)
_hazard_text = st.text(
    st.sampled_from(["a", "z", "\u00e9", "\ud7ff", "\ue000", "\uffff", "\U0001f600", "\U00010000"]),
    max_size=4,
)
_keys = st.one_of(_text, _hazard_text)

# Floats around every boundary where orjson and JCS formatting diverge.
_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=1e-7, max_value=1e-4, allow_nan=False),
    st.floats(min_value=1e14, max_value=1e22, allow_nan=False),
    st.integers(-(2**60), 2**60).map(float),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-6, 1e-5, 1e15, 1e16, 1e21, 5e-324, 0.1, 2.5]),
)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-SAFE_INT, SAFE_INT),
    _floats,
    _text,
)

_json = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(_keys, children, max_size=5),
    ),
    max_leaves=10,
)

_events = st.dictionaries(_keys, _json, max_size=6)

# Inputs the fast path accepts (no U+E000..U+FFFF in keys, JCS-compatible floats), so the
# orjson branch itself is exercised on a wide variety of shapes, not just the fallback.
_fast_keys = st.text(
    st.characters(codec="utf-8", max_codepoint=0xDFFF) | st.characters(min_codepoint=0x10000),
    max_size=12,
)
_fast_floats = st.floats(min_value=1e-5, max_value=1e15, exclude_max=True).filter(
    lambda f: not f.is_integer()
)
_fast_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-SAFE_INT, SAFE_INT),
        _fast_floats,
        _fast_floats.map(lambda f: -f),
        _text,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(_fast_keys, children, max_size=5),
    ),
    max_leaves=10,
)
_fast_events = st.dictionaries(_fast_keys, _fast_json, max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_events)
@example({"a": 1.0, "b": -0.0, "c": 1e-6, "d": 1e16, "e": 1e21})
@example({"\ue000": 1, "\U0001f600": 2, "\u00e9": 3, "z": 4})
@example({"x": '\x00\x1f\x7f\b\f\n\r\t"\\/\u2028\u2029\U0001f600'})
@example({"n": [SAFE_INT, -SAFE_INT, 0, True, False, None]})
def test_matches_reference_for_arbitrary_events(event: dict[str, Any]) -> None:
    expected = rfc8785.dumps(event)
    assert canonical_bytes(event) == expected
    # Insertion order must not matter.
    assert canonical_bytes(dict(reversed(list(event.items())))) == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_fast_events)
def test_fast_path_output_matches_reference(event: dict[str, Any]) -> None:
    assert canonical._fast_path_ok(event, 0)
    assert orjson.dumps(event, option=orjson.OPT_SORT_KEYS) == rfc8785.dumps(event)
    assert canonical_bytes(event) == rfc8785.dumps(event)


@settings(max_examples=80, deadline=None)
@given(_json)
def test_matches_reference_for_arbitrary_values(value: Any) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


def test_rfc8785_reference_example() -> None:
    # RFC 8785 §3.2.3 sorting example, checked against the RFC's printed output.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    expected = (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
        '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    ).encode()
    assert canonical_bytes(value) == expected


def test_rfc8785_number_examples() -> None:
    # RFC 8785 §3.2.2.3 / Appendix B samples.
    cases = {
        0.0: b"0",
        1e21: b"1e+21",
        1e20: b"100000000000000000000",
        333333333.3333333: b"333333333.3333333",
        1e-7: b"1e-7",
        0.000001: b"0.000001",
        5e-324: b"5e-324",
        1.7976931348623157e308: b"1.7976931348623157e+308",
        9007199254740992.0: b"9007199254740992",
        295147905179352830000.0: b"295147905179352830000",
    }
    for value, expected in cases.items():
        assert canonical_bytes([value]) == b"[" + expected + b"]", value
    assert canonical_bytes([-0.0]) == b"[0]"


def test_typical_event_takes_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(_: object) -> bytes:
        raise AssertionError("reference path used")

    monkeypatch.setattr(canonical.rfc8785, "dumps", boom)
    event = {
        "id": "01J8Z3",
        "tenant": "acme",
        "actor": {"id": "u-1", "ip": "203.0.113.9", "roles": ["admin", "ops"]},
        "action": "user.login",
        "ok": True,
        "latency_ms": 12.75,
        "attempt": 3,
        "note": "caf\u00e9 \U0001f600",
        "extra": None,
    }
    assert canonical_bytes(event).startswith(b'{"action":"user.login","actor":{')


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1.0},
        {"a": -0.0},
        {"a": 1e-6},
        {"a": 1e16},
        {"\ue000": 1, "\U0001f600": 2},
        {"a": OrderedDict(b=1)},
        {"a": (1, 2)},
    ],
)
def test_inputs_outside_fast_path_still_match(value: Any) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


class _Color(enum.StrEnum):
    RED = "red"


def test_str_enum_matches_reference() -> None:
    assert canonical_bytes({"c": _Color.RED}) == rfc8785.dumps({"c": _Color.RED}) == b'{"c":"red"}'


@pytest.mark.parametrize(
    "value",
    [
        {"a": math.nan},
        {"a": math.inf},
        {"a": 2**53},
        {"a": -(2**53)},
        {1: "non-string key"},
        {"a": "\ud800"},
        {"\udfff": 1},
        {"a": object()},
        {"a": b"bytes"},
    ],
)
def test_rejects_what_jcs_cannot_represent(value: Any) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_bytes(value)
    # The reference refuses too (with a bare UnicodeEncodeError for surrogate keys).
    with pytest.raises(ValueError):
        rfc8785.dumps(value)


def test_cyclic_input_raises_canonicalization_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(CanonicalizationError):
        canonical_bytes({"loop": loop})


def test_deep_nesting_beyond_orjson_limit_matches_reference() -> None:
    value: Any = "leaf"
    for _ in range(300):
        value = {"k": [value]}
    assert canonical_bytes(value) == rfc8785.dumps(value)


# -- canonical_json_bytes: the ingest fast path over values parsed from JSON -----------------

from hypothesis import given as _given  # noqa: E402
from hypothesis import settings as _settings  # noqa: E402
from hypothesis import strategies as _st  # noqa: E402

from auditstream.integrity.canonical import canonical_json_bytes  # noqa: E402

_json_scalars = _st.one_of(
    _st.none(), _st.booleans(), _st.integers(-(2**53) + 1, 2**53 - 1),
    _st.floats(allow_nan=False, allow_infinity=False), _st.text(),
    _st.sampled_from([1.0, -0.0, 1e-5, 0.0001, 0.00001, 1e15, 1e16, 123456789012345.6,
                      2**53 - 1, 10**15, 0.5, "a:1.0,", "\ue000", "1e5"]),
)
_json_values = _st.recursive(
    _json_scalars,
    lambda kids: _st.one_of(_st.lists(kids, max_size=4),
                            _st.dictionaries(_st.text(max_size=6), kids, max_size=4)),
    max_leaves=20,
)


@_settings(max_examples=1500, deadline=None)
@_given(_st.dictionaries(_st.text(max_size=6), _json_values, max_size=6))
def test_canonical_json_bytes_matches_rfc8785(value: dict) -> None:  # type: ignore[type-arg]
    import rfc8785 as _r

    try:
        want = _r.dumps(value)
    except Exception:
        return
    assert canonical_json_bytes(value) == want


_DOCUMENTED_UNSAFE = re.compile(
    rb"[:\[,]-?(?:\d{16}|\d+\.0[,\]}]|\d+(?:\.\d+)?[eE]|0\.00000)")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json)
@example([1.0, -0.0, 1e-6, 1e16, 1e21, 12345678901234567, "a:1.0,", 0.000001, -3.5e-7])
def test_the_unsafe_number_scan_is_the_documented_pattern(value: Any) -> None:
    """``_UNSAFE_NUMBER`` is written for speed; it must flag exactly what its comment's
    plain pattern flags."""
    out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    assert canonical._unsafe_number(out) == (_DOCUMENTED_UNSAFE.search(out) is not None)
