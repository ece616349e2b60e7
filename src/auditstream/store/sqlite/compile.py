"""Compile a filter tree to an SQLite ``WHERE`` fragment with bound parameters.

Semantics match ``query.predicate`` (the property test in tests/query holds them
together): a missing path never matches a leaf, and ``Not`` of a leaf that could not be
evaluated is true, which is why a negated subtree is wrapped in ``IFNULL(…, 0)``: SQL's
three-valued logic otherwise drops rows whose field is NULL from ``NOT (x = 1)``.
"""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequest
from ...model.severity import RANK
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
    check_size,
    clamp_int,
)
from ...query.predicate import tokenize
from .schema import json_path

#: Canonical top-level fields held in their own columns (title and description are read
#: from the body, and searched through the full-text table).
COLUMNS = {
    "id": "id", "type": "type", "category": "category", "outcome": "outcome", "seq": "seq",
    "severity": "severity", "timestamp": "ts", "received_at": "received",
}


class Compiler:
    """``fts_drive``: let a text match lead the plan (look up each matching row) instead of
    probing the matches while walking the tenant's time index. Right for rare terms only;
    the store decides per query from the terms' document counts."""

    def __init__(self, path_columns: dict[str, str], *, fts_drive: bool = False):
        self.path_columns = path_columns
        self.fts_drive = fts_drive

    def expr(self, path: str) -> tuple[str, list[Any]]:
        if path in COLUMNS:
            return COLUMNS[path], []
        if path in self.path_columns:
            return self.path_columns[path], []
        return "json_extract(body, ?)", [json_path(path)]

    def in_body(self, path: str) -> bool:
        """True when ``path`` is read from the JSON body, not from a column."""
        return path not in COLUMNS and path not in self.path_columns

    def kind(self, path: str) -> tuple[str, list[Any]]:
        """SQL naming the type of ``path``'s value: 'integer', 'real' and 'text' for the
        scalars a comparison may match. A column holds scalars only; in the body,
        ``json_extract`` reads true/false as 1/0 and an object or list as its JSON text, so
        ``typeof`` of it would call them numbers and strings: ``json_type`` does not."""
        if self.in_body(path):
            return "json_type(body, ?)", [json_path(path)]
        expr, p = self.expr(path)
        return f"typeof({expr})", p

    def where(self, node: Node) -> tuple[str, list[Any]]:
        check_size(node)  # whoever built the tree, its SQL must stay within SQLite's limits
        params: list[Any] = []
        sql = self._node(node, params)
        return sql, params

    def _node(self, node: Node, params: list[Any]) -> str:
        if isinstance(node, All):
            return "1"
        if isinstance(node, And):
            return "(" + " AND ".join(self._node(c, params) for c in node.children) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self._node(c, params) for c in node.children) + ")"
        if isinstance(node, Not):
            return f"NOT IFNULL({self._node(node.child, params)}, 0)"
        if isinstance(node, Eq):
            return self._eq(node, params)
        if isinstance(node, Cmp):
            return self._cmp(node, params)
        if isinstance(node, Prefix):
            expr, p = self.expr(node.path)
            kind, k = self.kind(node.path)
            if not node.prefix:
                params.extend(k)
                return f"({kind} = 'text')"
            hi = prefix_upper_bound(node.prefix)
            if hi is None:
                params.extend([*k, *p, node.prefix])
                return f"({kind} = 'text' AND {expr} >= ?)"
            params.extend([*k, *p, node.prefix, *p, hi])
            return f"({kind} = 'text' AND {expr} >= ? AND {expr} < ?)"
        if isinstance(node, Exists):
            # Indexed path columns hold scalars only (NULL for a bool, object or list), so
            # only the core columns can answer "exists" by themselves.
            if node.path in COLUMNS:
                expr, _ = self.expr(node.path)
                return f"({expr} IS NOT NULL)"
            params.append(json_path(node.path))
            return "(IFNULL(json_type(body, ?), 'null') != 'null')"
        if isinstance(node, Text):
            # The predicate's words, which are unicode61's: a term of private-use
            # characters is a word to both, and must not drop out as matching everything.
            terms = tuple(t for t in node.terms if tokenize(t))
            if not terms:
                return "1"
            params.append(fts_query(terms))
            # The unary + keeps the planner from turning the match list into rowid lookups.
            rid = "rid" if self.fts_drive else "+rid"
            return f"{rid} IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)"
        raise TypeError(f"unknown filter node {node!r}")

    def _eq(self, node: Eq, params: list[Any]) -> str:
        if not node.values:
            return "0"
        if node.path == "tags":
            params.extend(node.values)
            marks = ",".join("?" * len(node.values))
            return (
                "EXISTS (SELECT 1 FROM json_each(body, '$.tags') "
                f"WHERE json_each.type = 'text' AND json_each.value IN ({marks}))"
            )
        if node.path == "severity":
            ranks = [RANK[v] for v in node.values if isinstance(v, str) and v in RANK]
            if not ranks:
                return "0"
            params.extend(ranks)
            return f"severity IN ({','.join('?' * len(ranks))})"
        bools = [v for v in node.values if isinstance(v, bool)]
        others = [v for v in node.values if not isinstance(v, bool) and v is not None]
        parts = []
        if bools:
            # json true/false read back as 1/0 in SQL: compare JSON types instead.
            params.append(json_path(node.path))
            kinds = ",".join(f"'{'true' if b else 'false'}'" for b in bools)
            parts.append(f"json_type(body, ?) IN ({kinds})")
        if others:
            expr, p = self.expr(node.path)
            if node.path == "timestamp":
                others = [int(v) for v in others if isinstance(v, int | float)]
            test = ""
            if self.in_body(node.path):  # a column holds scalars only; keep its index
                kind, k = self.kind(node.path)
                test = f"{kind} IN ('integer', 'real', 'text') AND "
                params.extend(k)
            params.extend([*p, *others])
            if len(others) == 1:
                parts.append(f"({test}{expr} = ?)")
            else:
                parts.append(f"({test}{expr} IN ({','.join('?' * len(others))}))")
        if not parts:
            return "0"
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def _cmp(self, node: Cmp, params: list[Any]) -> str:
        op = node.op
        if node.path == "severity":
            if not isinstance(node.value, str) or node.value not in RANK:
                raise InvalidRequest(f"unknown severity {node.value!r}")
            params.append(RANK[node.value])
            return f"severity {op} ?"
        if node.path in ("timestamp", "received_at", "seq"):
            params.append(clamp_int(int(node.value)))  # type: ignore[arg-type]
            return f"{COLUMNS[node.path]} {op} ?"
        expr, p = self.expr(node.path)
        if isinstance(node.value, bool) or node.value is None:
            return "0"
        kinds = "('integer', 'real')" if isinstance(node.value, int | float) else "('text')"
        kind, k = self.kind(node.path)
        params.extend([*k, *p, node.value])
        return f"({kind} IN {kinds} AND {expr} {op} ?)"


_MAX_CHAR = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix``, or ``None``.

    SQLite's ``BINARY`` collation compares UTF-8 bytes, which is code-point order, so this
    is ``prefix`` with its last character incremented. Trailing U+10FFFF cannot be
    incremented (``chr`` refuses 0x110000) and is dropped first; a prefix of nothing but
    U+10FFFF has no bound. The surrogate block is skipped: no stored (UTF-8) string holds
    one, and SQLite cannot bind one.
    """
    head = prefix.rstrip(chr(_MAX_CHAR))
    if not head:
        return None
    nxt = ord(head[-1]) + 1
    if nxt in _SURROGATES:
        nxt = _SURROGATES.stop
    return head[:-1] + chr(nxt)


def fts_query(terms: tuple[str, ...]) -> str:
    """Each term becomes a quoted FTS5 phrase (a trailing ``*`` a prefix query); all ANDed.

    Quoting every term means no user input is ever read as FTS5 syntax. NUL becomes a
    space: FTS5 would take it for the end of the query ("unterminated string"), and the
    tokenizer separates words at it anyway.
    """
    parts = []
    for term in terms:
        star = term.endswith("*")
        body = (term[:-1] if star else term).replace("\x00", " ")
        phrase = '"' + body.replace('"', '""') + '"'
        parts.append(phrase + (" *" if star else ""))
    return " AND ".join(parts) if parts else '""'
