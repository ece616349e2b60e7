"""Compile a filter tree into a Python predicate over one canonical event dict.

This is the in-process twin of the SQL compiler (``store.sqlite.sql``): live streams, push
rules and anything else that filters events without the store call it, so the two must
select exactly the same events. The semantics below are the contract both implement.

Paths
    A path is resolved against the event dict: a top-level key (``type``, ``tags``) or
    ``object.attr[.attr…]`` walking nested dicts (``context.http_status``,
    ``context.http.route``). A key that is absent, holds ``None``, or an intermediate value
    that is not a dict all count as *missing*. Paths must satisfy
    ``filter.is_valid_path``; anything else raises ``ValueError`` at compile time.

Values and types
    Event values are JSON values. Strings compare case-sensitively (code-point order,
    which is also the byte order of UTF-8, i.e. SQLite's ``BINARY`` collation). Values of
    different JSON types never equal or order against each other, except that ``int`` and
    ``float`` compare numerically (``1 == 1.0``). ``bool`` is its own type: ``True`` never
    equals ``1``. ``None`` inside a filter never matches anything (``null`` is spelt
    ``Not(Exists(path))``). Lists and objects never match ``Eq``/``Cmp``/``Prefix``, except
    the top-level ``tags`` list under ``Eq``.

``All``
    Matches every event.

``Eq(path, values)``
    The value at ``path`` equals any of ``values`` under the type rules above. A missing
    path never matches (so ``severity:info`` does not match an event without a severity,
    although ``Cmp`` treats that event as ``info``). For top-level ``tags`` (a list of
    strings) it matches when the list contains any of ``values``. An empty ``values``
    matches nothing.

``Cmp(path, op, value)``
    ``event_value <op> value`` with ``op`` one of ``> >= < <=``.

    * ``severity``: by rank (``info`` < ``low`` < ``medium`` < ``high`` < ``critical``);
      a missing severity counts as ``info``; an event severity that is not a known name
      never matches. ``value`` must be a known name (``ValueError`` otherwise).
    * ``timestamp`` and ``received_at`` (:data:`TIME_PATHS`): in integer microseconds
      since the epoch. The event's value is an RFC 3339 string parsed with
      ``model.times.parse_time``; a missing, non-string or unparseable event value never
      matches. ``value`` is an ``int``/``float`` of microseconds (a string is accepted and
      parsed with ``parse_time`` once, at compile time).
    * any other path: a number ``value`` (int/float, not bool) compares numerically with
      a number event value; a string ``value`` compares lexicographically with a string
      event value; every other combination (mixed types, bools, ``None``, missing, lists,
      objects) does not match.

    The same microsecond rule applies to ``Eq`` on the time paths: ``Eq("timestamp",
    (us,))`` matches the event whose parsed timestamp is exactly ``us``.

``Prefix(path, prefix)``
    The value is a string that starts with ``prefix``; anything else (numbers, lists —
    including ``tags`` —, missing) never matches. Not supported on the time paths
    (``ValueError``), whose stored form is an integer.

``Exists(path)``
    The path is present and not ``None`` (any type, including lists and objects).

``Text(terms)``
    Every term must match the event's ``title`` or its ``description`` (a missing or
    non-string field is empty text), the way an FTS5 ``unicode61`` phrase query would:

    * text and term are split into tokens, each a maximal run of Unicode letters, digits
      and private-use characters (``L*``, ``N*``, ``Co``: unicode61's categories); every
      other character, including ``_``, separates. Tokens compare lower-cased, with the
      diacritics of Latin letters removed (``Café`` is ``cafe``) and combining marks
      U+0300–U+036F dropped, as unicode61's ``remove_diacritics=1`` does.
    * a term matches a field when the term's token sequence occurs contiguously in that
      field's token sequence (a one-token term is a whole-word match; a phrase must
      occur as a phrase within one field, not spread over title and description).
    * a term ending in ``*`` makes its last token a prefix (``"deploy fail*"`` matches
      "Deploy failed"). :func:`text_term_tokens` returns exactly the token list and
      prefix flag the SQL compiler should put in its ``MATCH`` expression.
    * a term without tokens (``""``, ``"*"``, ``"--"``) matches every event; ``Text(())``
      matches every event.

``And`` / ``Or`` / ``Not``
    Conjunction (empty: every event), disjunction (empty: no event), negation. ``Not``
    is plain boolean negation: ``Not(Eq(path, …))`` matches events where ``path`` is
    missing — the SQL compiler must write it so NULLs do not make it unknown.

Speed: the tree is compiled once into nested closures; severities are resolved to the set
of names that satisfy a comparison, ``Eq`` values are split by type into frozensets, each
text term becomes one precompiled regular expression, and event timestamp strings go
through a small LRU cache (one event is tested against many subscribers in a row).
"""

from __future__ import annotations

import math
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from ..model.severity import RANK, SEVERITIES
from ..model.times import TimeParseError, parse_time
from .filter import (
    All,
    And,
    Cmp,
    Eq,
    Exists,
    Node,
    Not,
    Or,
    Prefix,
    Scalar,
    Text,
    is_valid_path,
)

__all__ = ["TIME_PATHS", "Predicate", "compile_predicate", "text_term_tokens", "tokenize"]

Event = dict[str, Any]
Predicate = Callable[[Event], bool]
Getter = Callable[[Event], Any]

#: Paths whose filter values are integer microseconds and whose event values are RFC 3339.
TIME_PATHS = frozenset({"timestamp", "received_at"})

# A token character is a Unicode letter or digit (``\w`` minus ``_``: ``\w`` in a str
# pattern is exactly ``str.isalnum()`` plus the underscore) or a private-use character.
_PRIVATE = "\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd"
_TOKEN_CHAR = rf"(?:[^\W_]|[{_PRIVATE}])"
_TOKEN = re.compile(rf"{_TOKEN_CHAR}+")
_SEPARATORS = rf"(?:(?![{_PRIVATE}])[\W_])+"
_COMBINING = re.compile("[\u0300-\u036f]")


@lru_cache(maxsize=8192)
def _fold_char(c: str) -> str:
    decomposed = unicodedata.normalize("NFD", c)
    if len(decomposed) > 1 and unicodedata.name(c, "").startswith("LATIN"):
        return decomposed[0]
    return c


def fold(text: str) -> str:
    """Text as unicode61 compares it, but for case: Latin letters without diacritics,
    combining marks dropped."""
    if text.isascii():
        return text
    return _COMBINING.sub("", "".join(_fold_char(c) for c in text))

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def _true(event: Event) -> bool:
    return True


def _false(event: Event) -> bool:
    return False


def tokenize(text: str) -> list[str]:
    """The lower-cased, folded ``unicode61``-style tokens of ``text``."""
    return [tok.lower() for tok in _TOKEN.findall(fold(text))]


def text_term_tokens(term: str) -> tuple[tuple[str, ...], bool]:
    """A ``Text`` term as ``(tokens, last_token_is_prefix)``; no tokens matches everything."""
    tokens = tuple(tokenize(term))
    return tokens, bool(tokens) and term.endswith("*")


def _is_number(value: object) -> bool:
    return type(value) is int or type(value) is float


@lru_cache(maxsize=4096)
def _parse_event_time(value: str) -> int | None:
    """Microseconds of an event's RFC 3339 string, or ``None`` when it does not parse."""
    try:
        return parse_time(value)
    except TimeParseError:
        return None


def _filter_time(value: Scalar, path: str) -> int | float:
    """A filter-side time value as microseconds (strings parsed once, here)."""
    if _is_number(value):
        return value  # type: ignore[return-value]
    if isinstance(value, str):
        try:
            return parse_time(value)
        except TimeParseError as exc:
            raise ValueError(f"bad {path} value in filter: {exc}") from None
    raise ValueError(f"bad {path} value in filter: {value!r}")


# --------------------------------------------------------------------------- paths


def _getter(path: str) -> Getter:
    """A function returning the value at ``path`` or ``None`` when it is missing."""
    if not is_valid_path(path):
        raise ValueError(f"not a valid filter path: {path!r}")
    if "." not in path:
        return lambda event: event.get(path)
    head, *rest = path.split(".")
    if len(rest) == 1:
        # The overwhelmingly common case (``actor.id``), unrolled.
        (attr,) = rest

        def get_one(event: Event) -> Any:
            obj = event.get(head)
            return obj.get(attr) if isinstance(obj, dict) else None

        return get_one

    def get_deep(event: Event) -> Any:
        obj: Any = event.get(head)
        for attr in rest:
            if not isinstance(obj, dict):
                return None
            obj = obj.get(attr)
        return obj

    return get_deep


def _time_getter(path: str) -> Getter:
    """The value at a time path as microseconds, or ``None``."""
    get = _getter(path)

    def get_time(event: Event) -> int | None:
        value = get(event)
        return _parse_event_time(value) if type(value) is str else None

    return get_time


# --------------------------------------------------------------------------- leaves


def _value_matcher(values: Iterable[Scalar]) -> Callable[[Any], bool]:
    """Typed membership test for one event value (see module docstring)."""
    strs = frozenset(v for v in values if type(v) is str)
    bools = frozenset(v for v in values if type(v) is bool)
    # int and float share a set on purpose: 1 and 1.0 hash and compare equal.
    nums = frozenset(v for v in values if _is_number(v))

    def matches(value: Any) -> bool:
        kind = type(value)
        if kind is str:
            return value in strs
        if kind is int or kind is float:
            return value in nums
        if kind is bool:
            return value in bools
        return False

    return matches


def _compile_eq(node: Eq) -> Predicate:
    path, values = node.path, node.values
    if not values:
        return _false
    if path in TIME_PATHS:
        wanted = frozenset(_filter_time(v, path) for v in values if v is not None)
        get_time = _time_getter(path)
        return lambda event: get_time(event) in wanted
    matches = _value_matcher(values)
    if path == "tags":
        strs_only = all(type(v) is str for v in values)
        wanted_strs = frozenset(values)

        def tags_eq(event: Event) -> bool:
            tags = event.get("tags")
            if not isinstance(tags, list):
                return False
            if strs_only:
                # C-speed set intersection; a str never equals a non-str, so non-string
                # elements cannot produce a false positive here.
                try:
                    return not wanted_strs.isdisjoint(tags)
                except TypeError:  # an unhashable element; fall back to one by one
                    pass
            return any(matches(tag) for tag in tags)

        return tags_eq
    get = _getter(path)
    if len(values) == 1 and type(values[0]) is str:
        # Most common shape (``actor.id:alice``): a str only ever equals a str, so plain
        # ``==`` is the whole typed comparison.
        (only,) = values
        if "." not in path:
            return lambda event: event.get(path) == only
        return lambda event: get(event) == only
    return lambda event: matches(get(event))


def _compile_cmp(node: Cmp) -> Predicate:
    path, value = node.path, node.value
    if node.op not in _OPS:
        raise ValueError(f"bad comparison operator: {node.op!r}")
    op = _OPS[node.op]
    if path == "severity":
        if not isinstance(value, str) or value not in RANK:
            raise ValueError(f"bad severity in filter: {value!r}")
        # Resolve the comparison to the set of names satisfying it, once.
        target = RANK[value]
        allowed: set[str | None] = {name for name in SEVERITIES if op(RANK[name], target)}
        if "info" in allowed:
            allowed.add(None)  # a missing severity counts as info
        frozen = frozenset(allowed)

        def severity_cmp(event: Event) -> bool:
            sev = event.get("severity")
            return (sev is None or type(sev) is str) and sev in frozen

        return severity_cmp
    if path in TIME_PATHS:
        bound = _filter_time(value, path)
        get_time = _time_getter(path)

        def time_cmp(event: Event) -> bool:
            us = get_time(event)
            return us is not None and op(us, bound)

        return time_cmp
    get = _getter(path)
    if _is_number(value):
        if isinstance(value, float) and math.isnan(value):
            return _false

        def num_cmp(event: Event) -> bool:
            got = get(event)
            kind = type(got)
            return (kind is int or kind is float) and op(got, value)

        return num_cmp
    if type(value) is str:

        def str_cmp(event: Event) -> bool:
            got = get(event)
            return type(got) is str and op(got, value)

        return str_cmp
    return _false  # bool or None: never ordered


def _compile_prefix(node: Prefix) -> Predicate:
    if node.path in TIME_PATHS:
        raise ValueError(f"Prefix is not supported on {node.path}")
    get, prefix = _getter(node.path), node.prefix

    def prefix_match(event: Event) -> bool:
        got = get(event)
        return type(got) is str and got.startswith(prefix)

    return prefix_match


def _compile_exists(node: Exists) -> Predicate:
    get = _getter(node.path)
    return lambda event: get(event) is not None


def _term_regex(tokens: tuple[str, ...], prefix: bool) -> re.Pattern[str]:
    """One regex equivalent to "the token sequence occurs contiguously in the text".

    Searching the raw text with token boundaries avoids tokenizing every event's title
    and description for every subscriber.
    """
    body = _SEPARATORS.join(re.escape(tok) for tok in tokens)
    head = f"(?<!{_TOKEN_CHAR})"
    tail = "" if prefix else f"(?!{_TOKEN_CHAR})"
    return re.compile(head + body + tail, re.IGNORECASE)


def _compile_text(node: Text) -> Predicate:
    searches = []
    for term in node.terms:
        tokens, prefix = text_term_tokens(term)
        if tokens:  # a term without tokens matches everything: drop it
            searches.append(_term_regex(tokens, prefix).search)
    if not searches:
        return _true

    def text_match(event: Event) -> bool:
        title = event.get("title")
        desc = event.get("description")
        title = fold(title) if type(title) is str else ""
        desc = fold(desc) if type(desc) is str else ""
        # Explicit loops here and below: all()/any() over a generator cost a frame per call.
        for search in searches:  # noqa: SIM110
            if search(title) is None and search(desc) is None:
                return False
        return True

    return text_match


# --------------------------------------------------------------------------- combinators


def _compile_and(children: list[Predicate]) -> Predicate:
    if not children:
        return _true
    if len(children) == 1:
        return children[0]
    if len(children) == 2:
        first, second = children
        return lambda event: first(event) and second(event)
    funcs = tuple(children)

    def all_of(event: Event) -> bool:
        for func in funcs:  # noqa: SIM110 (a generator would be slower)
            if not func(event):
                return False
        return True

    return all_of


def _compile_or(children: list[Predicate]) -> Predicate:
    if not children:
        return _false
    if len(children) == 1:
        return children[0]
    if len(children) == 2:
        first, second = children
        return lambda event: first(event) or second(event)
    funcs = tuple(children)

    def any_of(event: Event) -> bool:
        for func in funcs:  # noqa: SIM110 (a generator would be slower)
            if func(event):
                return True
        return False

    return any_of


def compile_predicate(node: Node) -> Predicate:
    """Compile ``node`` once into ``event -> bool`` (semantics: module docstring).

    Raises ``ValueError`` for a tree no compiler should accept (invalid path, unknown
    severity in ``Cmp``, unparseable time value, ``Prefix`` on a time path) and
    ``TypeError`` for an unknown node class.
    """
    if isinstance(node, All):
        return _true
    if isinstance(node, Eq):
        return _compile_eq(node)
    if isinstance(node, Cmp):
        return _compile_cmp(node)
    if isinstance(node, Prefix):
        return _compile_prefix(node)
    if isinstance(node, Exists):
        return _compile_exists(node)
    if isinstance(node, Text):
        return _compile_text(node)
    if isinstance(node, And):
        # All children are dropped rather than kept as a call that returns True.
        return _compile_and([compile_predicate(c) for c in node.children if not isinstance(c, All)])
    if isinstance(node, Or):
        # Compile every child even when one is All, so an invalid tree still raises.
        funcs = [compile_predicate(c) for c in node.children]
        if any(isinstance(c, All) for c in node.children):
            return _true
        return _compile_or(funcs)
    if isinstance(node, Not):
        inner = compile_predicate(node.child)
        return lambda event: not inner(event)
    raise TypeError(f"not a filter node: {node!r}")
