"""The filter tree as a ClickHouse ``WHERE`` clause over the ``events`` table.

Each node compiles to ``(sql, exact)``: ``sql`` is a ``UInt8`` expression that is never
NULL (so ``NOT`` means what ``query.predicate`` means by ``Not``) and selects at least
every event the predicate selects; ``exact`` says it selects exactly those. Where
ClickHouse cannot say the same thing cheaply (numbers of free-form paths, which it
compares as floats), the condition is a superset and the store applies the Python
predicate to what it returns: the predicate has the last word, as the issue asks
("the exact Python predicate as the final filter where ClickHouse's matching differs").

Full-text is exact in SQL: the indexer stores ``words``, the tokens of the title and of
the description as ``query.predicate.tokenize`` makes them, each field as `` t1 t2 `` on
its own line, so a term is a substring search for `` t1 t2 `` (or `` t1 t2`` for a prefix
term) that cannot cross from one field to the other.
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import InvalidRequest
from ...model.severity import RANK, SEVERITIES
from ...query.filter import (
    All,
    And,
    Cmp,
    Eq,
    Exists,
    Node,
    Not,
    Or,
    Prefix,
    Text,
    clamp_int,
)
from ...query.predicate import TIME_PATHS, text_term_tokens

#: Canonical fields kept as typed columns (always present but category and outcome).
STRING_COLUMNS = {"id": "id", "type": "type", "category": "category", "outcome": "outcome"}
INT_COLUMNS = {"timestamp": "ts", "received_at": "received", "seq": "seq"}
_NUMBER_TYPES = "('Int64', 'UInt64', 'Double')"
#: ClickHouse's JSON functions read an integer beyond 64 bits as the *string* of its digits
#: (``JSONType`` says 'String', ``JSONExtractRaw`` quotes it). A condition a string of
#: digits could satisfy is therefore only a superset: the predicate decides.
_DIGITS = re.compile(r"^-?[0-9]+$")
_BIG_INT_SQL = "match(JSONExtractString({args}), '^-?[0-9]{{19,}}$')"


def ambiguous(value: str) -> bool:
    """A string ClickHouse may have made of a JSON integer beyond 64 bits."""
    return bool(_DIGITS.match(value))


class Params:
    """Server-side bound parameters (``{p0:String}``): no value is ever spliced into SQL."""

    def __init__(self, prefix: str = "p") -> None:
        self.prefix = prefix  # two compilers in one query need their own names
        self.values: dict[str, Any] = {}

    def add(self, value: Any, kind: str | None = None) -> str:
        name = f"{self.prefix}{len(self.values)}"
        if kind is None:
            kind = ("String" if isinstance(value, str) else "Float64"
                    if isinstance(value, float) else "Int64")
        self.values[name] = value
        return f"{{{name}:{kind}}}"

    def strings(self, values: list[str]) -> str:
        return self.add(values, "Array(String)")


def json_args(path: str) -> str:
    """``body, 'subject', 'ecosystem'``: a path as ClickHouse JSON function arguments
    (segments are checked by ``filter.is_valid_path``: letters, digits, ``_`` and ``-``)."""
    return "body, " + ", ".join(f"'{seg}'" for seg in path.split("."))


def _bool(sql: str) -> str:
    return f"ifNull({sql}, 0)"


class Compiler:
    def __init__(self, prefix: str = "p", columns: dict[str, str] | None = None) -> None:
        """``columns``: path → the column holding its string value (``engine.PATH_COLUMN``)."""
        self.params = Params(prefix)
        self.columns = columns or {}

    def where(self, node: Node) -> tuple[str, bool]:
        return self._node(node)

    def _node(self, node: Node) -> tuple[str, bool]:
        if isinstance(node, All):
            return "1", True
        if isinstance(node, And):
            parts = [self._node(c) for c in node.children]
            sqls = [s for s, _ in parts if s != "1"]
            return ("(" + " AND ".join(sqls) + ")" if sqls else "1",
                    all(e for _, e in parts))
        if isinstance(node, Or):
            if not node.children:
                return "0", True
            parts = [self._node(c) for c in node.children]
            if any(s == "1" for s, _ in parts):
                return "1", all(e for _, e in parts)
            return "(" + " OR ".join(s for s, _ in parts) + ")", all(e for _, e in parts)
        if isinstance(node, Not):
            sql, exact = self._node(node.child)
            # The negation of a superset is no superset: leave it to the predicate.
            return (f"(NOT {sql})", True) if exact else ("1", False)
        if isinstance(node, Eq):
            return self._eq(node)
        if isinstance(node, Cmp):
            return self._cmp(node)
        if isinstance(node, Prefix):
            return self._prefix(node)
        if isinstance(node, Exists):
            return self._exists(node)
        if isinstance(node, Text):
            return self._text(node)
        raise TypeError(f"unknown filter node {node!r}")

    # -- leaves -------------------------------------------------------------------------

    def _eq(self, node: Eq) -> tuple[str, bool]:
        path, values = node.path, [v for v in node.values if v is not None]
        if not values:
            return "0", True
        if path == "severity":
            ranks = sorted({RANK[v] for v in values if isinstance(v, str) and v in RANK})
            return (f"sev IN ({', '.join(str(r) for r in ranks)})" if ranks else "0"), True
        if path in INT_COLUMNS:
            col = INT_COLUMNS[path]
            nums: list[int | float] = [
                v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
            if path in TIME_PATHS:
                nums += [time_value(v, path) for v in values if isinstance(v, str)]
            if not nums:
                return "0", True
            return "(" + " OR ".join(f"{col} = {self.params.add(_num(v))}"
                                     for v in nums) + ")", True
        strs = [v for v in values if isinstance(v, str)]
        if path in STRING_COLUMNS:
            if not strs:
                return "0", True
            return _bool(f"{STRING_COLUMNS[path]} IN {self.params.strings(strs)}"), True
        bools = [v for v in values if isinstance(v, bool)]
        nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if path == "tags":
            parts = []
            if strs:
                parts.append(f"(JSONType(x) = 'String' AND JSONExtractString(x) IN "
                             f"{self.params.strings(strs)})")
            if bools:
                parts.append(f"(JSONType(x) = 'Bool' AND JSONExtractBool(x) IN "
                             f"({', '.join('1' if b else '0' for b in bools)}))")
            if nums:
                parts.append(f"(JSONType(x) IN {_NUMBER_TYPES} AND JSONExtractFloat(x) IN "
                             f"{self._floats(nums)})")
                parts.append(f"(JSONType(x) = 'String' AND {_BIG_INT_SQL.format(args='x')})")
            return (f"arrayExists(x -> {' OR '.join(parts)}, JSONExtractArrayRaw(body, 'tags'))",
                    not nums and not any(map(ambiguous, strs)))
        args = json_args(path)
        parts = []
        if strs and path in self.columns:
            parts.append(_bool(f"{self.columns[path]} IN {self.params.strings(strs)}"))
        elif strs:
            parts.append(f"(JSONType({args}) = 'String' AND JSONExtractString({args}) IN "
                         f"{self.params.strings(strs)})")
        if bools:
            parts.append(f"(JSONType({args}) = 'Bool' AND JSONExtractBool({args}) IN "
                         f"({', '.join('1' if b else '0' for b in bools)}))")
        if nums:
            # Floats: equal numbers stay equal, but neighbours of a huge integer may too.
            parts.append(f"(JSONType({args}) IN {_NUMBER_TYPES} AND JSONExtractFloat({args}) IN "
                         f"{self._floats(nums)})")
            parts.append(f"(JSONType({args}) = 'String' AND {_BIG_INT_SQL.format(args=args)})")
        return "(" + " OR ".join(parts) + ")", not nums and not any(map(ambiguous, strs))

    def _floats(self, nums: list[int | float]) -> str:
        # + 0.0 turns -0.0 into 0.0: IN compares floats by their bits, so -0.0 would miss
        # a stored 0 that the predicate (and ``=``) call equal.
        return f"({', '.join(self.params.add(float(v) + 0.0, 'Float64') for v in nums)})"

    def _cmp(self, node: Cmp) -> tuple[str, bool]:
        path, op, value = node.path, node.op, node.value
        if op not in (">", ">=", "<", "<="):
            raise InvalidRequest(f"bad comparison operator {op!r}")
        if path == "severity":
            if not isinstance(value, str) or value not in RANK:
                raise InvalidRequest(f"unknown severity {value!r}")
            return f"sev {op} {RANK[value]}", True
        if path in INT_COLUMNS:
            if path in TIME_PATHS and isinstance(value, str):
                value = time_value(value, path)
            if not isinstance(value, int | float) or isinstance(value, bool):
                return "0", True
            return f"{INT_COLUMNS[path]} {op} {self.params.add(_num(value))}", True
        if isinstance(value, bool) or value is None:
            return "0", True
        if isinstance(value, str):
            if path in STRING_COLUMNS:
                return _bool(f"{STRING_COLUMNS[path]} {op} {self.params.add(value)}"), True
            if path == "tags":
                return "0", True
            args = json_args(path)
            return (f"(JSONType({args}) = 'String' AND JSONExtractString({args}) {op} "
                    f"{self.params.add(value)})"), False  # digits of a huge integer compare too
        if path in STRING_COLUMNS or path == "tags":
            return "0", True
        args = json_args(path)
        loose = {">": ">=", "<": "<="}.get(op, op)  # float rounding: keep a superset
        return (f"((JSONType({args}) IN {_NUMBER_TYPES} AND JSONExtractFloat({args}) {loose} "
                f"{self.params.add(float(value), 'Float64')}) OR (JSONType({args}) = 'String' "
                f"AND {_BIG_INT_SQL.format(args=args)}))"), False

    def _prefix(self, node: Prefix) -> tuple[str, bool]:
        path, prefix = node.path, node.prefix
        if path in TIME_PATHS:
            raise InvalidRequest("a time field takes no prefix", errors=[
                {"field": path, "reason": "prefix match is not supported on time fields"}])
        if path == "severity":
            ranks = [i for i, s in enumerate(SEVERITIES) if s.startswith(prefix)]
            return (f"sev IN ({', '.join(map(str, ranks))})" if ranks else "0"), True
        if path in INT_COLUMNS or path == "tags":
            return "0", True
        if path in STRING_COLUMNS:
            return _bool(f"startsWith({STRING_COLUMNS[path]}, {self.params.add(prefix)})"), True
        args = json_args(path)
        return (f"(JSONType({args}) = 'String' AND "
                f"startsWith(JSONExtractString({args}), {self.params.add(prefix)}))"), (
                    prefix[:1] not in ("", "-") and not prefix[:1].isdigit())

    def _exists(self, node: Exists) -> tuple[str, bool]:
        path = node.path
        if path in INT_COLUMNS or path in ("id", "type", "severity"):
            return "1", True
        if path in STRING_COLUMNS:
            return f"isNotNull({STRING_COLUMNS[path]})", True
        # JSONType says 'Null' for null, for a missing key and below a non-object alike.
        return f"(JSONType({json_args(path)}) != 'Null')", True

    def _text(self, node: Text) -> tuple[str, bool]:
        parts = []
        for term in node.terms:
            tokens, prefix = text_term_tokens(term)
            if not tokens:
                continue
            needle = " " + " ".join(tokens) + ("" if prefix else " ")
            # hasToken lets the token bloom filter skip granules; position() decides.
            probe = [t for t in tokens[:-1] if t.isascii() and t.isalnum()]
            if not prefix and tokens[-1].isascii() and tokens[-1].isalnum():
                probe.append(tokens[-1])
            checks = [f"hasToken(words, {self.params.add(t)})" for t in probe[:3]]
            checks.append(f"position(words, {self.params.add(needle)}) > 0")
            parts.append("(" + " AND ".join(checks) + ")")
        if not parts:
            return "1", True
        return "(" + " AND ".join(parts) + ")", True


def time_value(value: str, path: str) -> int | float:
    from ...query.predicate import _filter_time  # the predicate's own reading of it

    try:
        return _filter_time(value, path)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


def _num(value: int | float) -> int | float:
    return clamp_int(value) if type(value) is int else value


_ASCII_TOKEN = re.compile(r"[a-z0-9]+")


def words_of(title: Any, description: Any) -> str:
    """The ``words`` column of an event (see the module docstring)."""
    from ...query.predicate import tokenize

    out = []
    for text in (title, description):
        if not isinstance(text, str):
            toks = []
        elif text.isascii():  # the same tokens: ASCII letters and digits are all there is
            toks = _ASCII_TOKEN.findall(text.lower())
        else:
            toks = tokenize(text)
        out.append(" " + " ".join(toks) + " " if toks else " ")
    return "\n".join(out)


__all__ = ["Compiler", "Params", "time_value", "words_of"]
