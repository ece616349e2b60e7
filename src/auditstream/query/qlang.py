"""The ``q`` language: the one-line query people type in the CLI, stream, push rules, console.

Grammar (whitespace is any Unicode space)::

    query    := or_expr?                       empty or blank → All()
    or_expr  := and_expr ("OR" and_expr)*      OR binds looser than AND
    and_expr := unary (["AND"] unary)*         juxtaposition is AND; "AND" is optional
    unary    := ("NOT" | "-") unary | primary  "-" must touch what it negates: -type:x
    primary  := "(" or_expr ")" | term
    term     := field ":" value | '"' phrase '"' | word

``OR``, ``AND`` and ``NOT`` are keywords only in upper case and only as whole bare words;
quote them (``"OR"``) to search for the word.

Terms
    ``word`` / ``"phrase"``
        Free text (``Text``). Consecutive free-text terms of one AND group share a single
        ``Text`` node (``deploy "Nordic Star"`` → ``Text(("deploy", "Nordic Star"))``); a
        negated one gets its own (``-foo`` → ``Not(Text(("foo",)))``). A phrase keeps its
        inner text verbatim. A word is everything up to whitespace or a parenthesis, so
        ``fail*`` reaches ``Text`` as the prefix term ``"fail*"``.
    ``field:value``
        ``field`` is any path ``filter.is_valid_path`` accepts (``type``, ``actor.id``,
        ``context.http_status``), or the pseudo-fields ``since`` / ``until``.

Values (after ``field:``)
    ``since:V`` / ``until:V``
        ``V`` is a duration (``30m``, ``24h``, ``7d``: that long before ``now_us``) or any
        absolute time ``parse_time`` accepts; → ``Cmp("timestamp", ">=" / "<", us)``.
    ``field:*``
        ``Exists(field)``.
    ``field:null``
        ``Not(Exists(field))``.
    ``field:>=V`` (also ``>``, ``<=``, ``<``)
        ``Cmp``. ``severity`` takes a severity name; ``timestamp``/``received_at`` take a
        time or a duration, converted to microseconds; elsewhere a bare value that is a
        number becomes an ``int``/``float``, anything else stays a string.
    ``field:V``
        ``Eq``. A bare value that is a JSON-style number is kept as *both* its string and
        its number (``context.http_status:500`` → ``Eq(…, ("500", 500))``), and
        ``true``/``false`` as both string and bool, so the filter matches whichever type
        the producer sent. A quoted value is a string only (``"500"`` → ``("500",)``).
        ``severity`` values must be severity names (case-insensitive, stored lower-case);
        time paths are converted to microseconds.
    ``field:V*``
        A bare value ending in ``*`` is a prefix: ``type:user.*`` → ``Prefix("type",
        "user.")``. Not allowed on ``severity`` or the time paths. Quote it for a literal.
    ``field:a,b,c``
        Several values, any may match: plain values share one ``Eq``; prefixes, ``*`` and
        ``null`` items become siblings in an ``Or``. Each item may be bare or quoted.

    ``"..."`` accepts ``\\"`` for a quote and ``\\\\`` for a backslash; any other backslash
    is kept as is.

Limits (so that no query, however hostile, costs more than a bounded amount to parse,
compile and run; the SQL it becomes must stay far inside SQLite's own limits)
    ``MAX_LENGTH``
        4,096 characters.
    ``MAX_DEPTH``
        32 levels of nesting: each ``(`` and each ``NOT`` / ``-`` opens a level.
    ``MAX_TERMS``
        256 terms: each word, phrase and field value counts one (``type:a,b`` counts two).
    ``seq`` comparisons take an integer that fits in 64 bits; times must fall in the range
    ``parse_time`` accepts (years 1 to 9999, durations up to 1,000 years).

Errors raise ``QuerySyntaxError(reason, position, text)`` where ``position`` is the 0-based
index of the offending token: the field for an unknown field, the opening quote for an
unterminated quote, the unmatched parenthesis, where the missing value should start for
an empty value, the value for a bad severity, time or seq, the keyword (or ``-``) for a
dangling ``OR``/``AND``/``NOT``, the first character past ``MAX_LENGTH``, the ``(`` or
``NOT`` that opens level 33, and the 257th term.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import QuerySyntaxError
from ..model.event import OBJECT_FIELDS
from ..model.severity import RANK, SEVERITIES
from ..model.times import TimeParseError, parse_time
from .filter import (
    TOP_LEVEL,
    All,
    Cmp,
    CmpOp,
    Eq,
    Exists,
    Node,
    Not,
    Or,
    Prefix,
    Scalar,
    Text,
    and_,
    is_valid_path,
)
from .predicate import TIME_PATHS

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "MAX_TERMS", "parse_q"]

#: Longest ``q`` accepted, in characters.
MAX_LENGTH = 4096
#: Deepest nesting of parentheses and negations.
MAX_DEPTH = 32
#: Most terms (words, phrases, field values) in one query.
MAX_TERMS = 256

_PSEUDO_FIELDS = frozenset({"since", "until"})
_KEYWORDS = frozenset({"OR", "AND", "NOT"})
_OPERATORS: tuple[CmpOp, ...] = (">=", "<=", ">", "<")  # two-character ones first
_INT = re.compile(r"-?\d+")
_FLOAT = re.compile(r"-?\d+(?:\.\d+(?:[eE][+-]?\d+)?|[eE][+-]?\d+)")
# Integers beyond SQLite's 64-bit range stay strings: the SQL side could not bind them.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1

_UNKNOWN_FIELD_HINT = (
    "must be a canonical field ({}), since/until, or a dotted path under {}".format(
        ", ".join(sorted(TOP_LEVEL)), "/".join(OBJECT_FIELDS)
    )
)
_SEVERITY_HINT = "expected one of " + ", ".join(SEVERITIES)


@dataclass(frozen=True, slots=True)
class _Token:
    """One lexical token; ``node`` is set for field terms, ``text`` for free text."""

    kind: str  # "(", ")", "OR", "AND", "NOT", "TEXT", "FIELD"
    pos: int
    text: str = ""
    node: Node | None = None
    minus: bool = False  # a NOT spelt "-", for the error message


@dataclass(frozen=True, slots=True)
class _Item:
    """One value after ``field:`` (or one element of a comma list)."""

    text: str
    quoted: bool
    pos: int


def _number(text: str) -> int | float | None:
    """``text`` as a JSON-style number, or ``None``."""
    if _INT.fullmatch(text):
        value = int(text)
        return value if _INT_MIN <= value <= _INT_MAX else None
    if _FLOAT.fullmatch(text):
        number = float(text)
        return number if math.isfinite(number) else None
    return None


def _dedupe(values: list[Scalar]) -> tuple[Scalar, ...]:
    """Drop repeats by type *and* value: ``1``, ``1.0`` and ``True`` are all distinct here."""
    seen: set[tuple[type, Scalar]] = set()
    out: list[Scalar] = []
    for v in values:
        key = (type(v), v)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return tuple(out)


class _Lexer:
    """Splits ``text`` into tokens, turning each ``field:value`` into its filter node."""

    def __init__(self, text: str, now: int):
        self.text = text
        self.now = now
        self.terms = 0

    def error(self, reason: str, pos: int) -> QuerySyntaxError:
        return QuerySyntaxError(reason, pos, self.text)

    def count_term(self, pos: int) -> None:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise self.error(f"more than {MAX_TERMS} terms; narrow the query", pos)

    def tokens(self) -> list[_Token]:
        s, n = self.text, len(self.text)
        out: list[_Token] = []
        i = 0
        while i < n:
            ch = s[i]
            if ch.isspace():
                i += 1
            elif ch in "()":
                out.append(_Token(ch, i))
                i += 1
            elif ch == "-":
                nxt = s[i + 1] if i + 1 < n else ""
                if not nxt or nxt.isspace() or nxt == ")":
                    raise self.error("dangling '-' (nothing to negate)", i)
                out.append(_Token("NOT", i, minus=True))
                i += 1
            elif ch == '"':
                self.count_term(i)
                phrase, end = self.quoted(i)
                out.append(_Token("TEXT", i, text=phrase))
                i = end
            else:
                i = self.word(i, out)
        return out

    def quoted(self, start: int) -> tuple[str, int]:
        """The string of the quote opening at ``start`` and the index after its end."""
        s, n = self.text, len(self.text)
        buf: list[str] = []
        i = start + 1
        while i < n:
            ch = s[i]
            if ch == '"':
                return "".join(buf), i + 1
            if ch == "\\" and i + 1 < n and s[i + 1] in '"\\':
                buf.append(s[i + 1])
                i += 2
                continue
            buf.append(ch)
            i += 1
        raise self.error("unterminated quote", start)

    def word(self, start: int, out: list[_Token]) -> int:
        """Lex a bare word or a ``field:value`` term starting at ``start``."""
        s, n = self.text, len(self.text)
        i = start
        while i < n and not s[i].isspace() and s[i] not in '():"':
            i += 1
        if i < n and s[i] == ":":
            field = s[start:i]
            if field not in _PSEUDO_FIELDS and not is_valid_path(field):
                raise self.error(f"unknown field {field!r}: {_UNKNOWN_FIELD_HINT}", start)
            node, end = self.field_value(field, i + 1)
            out.append(_Token("FIELD", start, node=node))
            return end
        # A free word: runs to whitespace or a parenthesis; later quotes/colons are literal.
        while i < n and not s[i].isspace() and s[i] not in "()":
            i += 1
        word = s[start:i]
        if word in _KEYWORDS:
            out.append(_Token(word, start))
        else:
            self.count_term(start)
            out.append(_Token("TEXT", start, text=word))
        return i

    def field_value(self, field: str, start: int) -> tuple[Node, int]:
        """Lex the value of ``field:`` beginning at ``start``; return its node and end."""
        s, n = self.text, len(self.text)
        i = start
        op: CmpOp | None = None
        for cand in _OPERATORS:
            if s.startswith(cand, i):
                op, i = cand, i + len(cand)
                break
        items: list[_Item] = []
        while True:
            if i >= n or s[i].isspace() or s[i] in "(),":
                raise self.error(f"empty value for {field}", i)
            self.count_term(i)
            if s[i] == '"':
                text, end = self.quoted(i)
                if end < n and not s[end].isspace() and s[end] not in "(),":
                    raise self.error("expected ',' or a space after the closing quote", end)
                items.append(_Item(text, True, i))
                i = end
            else:
                item_start = i
                while i < n and not s[i].isspace() and s[i] not in "(),":
                    i += 1
                items.append(_Item(s[item_start:i], False, item_start))
            if i < n and s[i] == ",":
                i += 1
                continue
            return self.build(field, op, start, items), i

    # ------------------------------------------------------------------ value → node

    def build(self, field: str, op: CmpOp | None, op_pos: int, items: list[_Item]) -> Node:
        if field in _PSEUDO_FIELDS:
            if op is not None:
                raise self.error(
                    f"bad time for {field}: takes a duration (24h) or a time, not {op}", op_pos
                )
            if len(items) > 1:
                raise self.error(f"bad time for {field}: takes a single value", items[1].pos - 1)
            us = self.time(items[0], relative=True)
            return Cmp("timestamp", ">=" if field == "since" else "<", us)
        if op is not None:
            if len(items) > 1:
                raise self.error("a comparison takes a single value", items[1].pos - 1)
            return Cmp(field, op, self.cmp_value(field, items[0]))
        eq_values: list[Scalar] = []
        others: list[Node] = []
        for item in items:
            if not item.quoted and item.text == "*":
                others.append(Exists(field))
            elif not item.quoted and item.text == "null":
                others.append(Not(Exists(field)))
            elif not item.quoted and item.text.endswith("*"):
                if field == "severity":
                    raise self.error(f"bad severity {item.text!r}: {_SEVERITY_HINT}", item.pos)
                if field in TIME_PATHS:
                    raise self.error(f"bad time {item.text!r}: no prefix match on times", item.pos)
                others.append(Prefix(field, item.text[:-1]))
            else:
                eq_values.extend(self.eq_values(field, item))
        nodes: list[Node] = [Eq(field, _dedupe(eq_values))] if eq_values else []
        nodes.extend(others)
        return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))

    def severity(self, item: _Item) -> str:
        name = item.text.lower()
        if name not in RANK:
            raise self.error(f"bad severity {item.text!r}: {_SEVERITY_HINT}", item.pos)
        return name

    def time(self, item: _Item, *, relative: bool) -> int:
        try:
            return parse_time(item.text, now=self.now, allow_relative=relative)
        except TimeParseError as exc:
            raise self.error(f"bad time: {exc}", item.pos) from None

    def cmp_value(self, field: str, item: _Item) -> Scalar:
        if field == "severity":
            return self.severity(item)
        if field == "seq":
            # seq is a 64-bit integer column: anything else could only fail in the store.
            if item.quoted or not _INT.fullmatch(item.text) or _number(item.text) is None:
                raise self.error(f"bad seq {item.text[:40]!r}: expected an integer "
                                 f"from {_INT_MIN} to {_INT_MAX}", item.pos)
            return int(item.text)
        if field in TIME_PATHS:
            # "timestamp:>=24h" reads naturally, so durations are allowed here too.
            return self.time(item, relative=True)
        if not item.quoted:
            number = _number(item.text)
            if number is not None:
                return number
        return item.text

    def eq_values(self, field: str, item: _Item) -> list[Scalar]:
        if field == "severity":
            return [self.severity(item)]
        if field in TIME_PATHS:
            return [self.time(item, relative=False)]
        values: list[Scalar] = [item.text]
        if not item.quoted:
            if item.text in ("true", "false"):
                values.append(item.text == "true")
            else:
                number = _number(item.text)
                if number is not None:
                    values.append(number)
        return values


class _Parser:
    """Recursive descent over the tokens (grammar: module docstring)."""

    def __init__(self, tokens: list[_Token], text: str):
        self.tokens = tokens
        self.text = text
        self.i = 0
        self.depth = 0

    def error(self, reason: str, pos: int) -> QuerySyntaxError:
        return QuerySyntaxError(reason, pos, self.text)

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _ends_operand(self, tok: _Token | None) -> bool:
        """True when ``tok`` cannot start an operand (so a preceding operator dangles)."""
        return tok is None or tok.kind in (")", "OR", "AND")

    def parse(self) -> Node:
        if not self.tokens:
            return All()
        node = self.or_expr()
        tok = self.peek()
        if tok is not None:  # only a ")" without its "(" can stop or_expr early
            raise self.error("unbalanced parenthesis: ')' without '('", tok.pos)
        assert node is not None  # tokens exist and none was left over
        return node

    def or_expr(self) -> Node | None:
        first = self.and_expr()
        if first is None:
            return None
        children = [first]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.take()
            if self._ends_operand(self.peek()):
                raise self.error("dangling OR", tok.pos)
            child = self.and_expr()
            assert child is not None  # the operand check above guarantees one
            children.append(child)
        if len(children) == 1:
            return first
        flat: list[Node] = []
        for child in children:  # a OR (b OR c) is one Or of three
            flat.extend(child.children if isinstance(child, Or) else (child,))
        return Or(tuple(flat))

    def and_expr(self) -> Node | None:
        parts: list[Node] = []
        words: list[str] = []  # the current run of free-text terms

        def flush() -> None:
            if words:
                parts.append(Text(tuple(words)))
                words.clear()

        while (tok := self.peek()) is not None and tok.kind != ")":
            if tok.kind == "OR":
                if not parts and not words:
                    raise self.error("dangling OR", tok.pos)
                break
            if tok.kind == "AND":
                self.take()
                if (not parts and not words) or self._ends_operand(self.peek()):
                    raise self.error("dangling AND", tok.pos)
                continue
            if tok.kind == "TEXT":
                words.append(self.take().text)
                continue
            flush()
            parts.append(self.unary())
        flush()
        return and_(*parts) if parts else None

    def unary(self) -> Node:
        tok = self.take()
        if tok.kind in ("NOT", "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"nested deeper than {MAX_DEPTH} levels", tok.pos)
            try:
                return self.nested(tok)
            finally:
                self.depth -= 1
        if tok.kind == "TEXT":  # only reached under NOT
            return Text((tok.text,))
        assert tok.node is not None, tok
        return tok.node

    def nested(self, tok: _Token) -> Node:
        """The operand of a ``NOT`` / ``-`` or the inside of a ``(`` (already taken)."""
        if tok.kind == "NOT":
            if self._ends_operand(self.peek()):
                raise self.error("dangling '-'" if tok.minus else "dangling NOT", tok.pos)
            return Not(self.unary())
        inner = self.or_expr()
        close = self.peek()
        if close is None or close.kind != ")":
            raise self.error("unbalanced parenthesis: '(' is never closed", tok.pos)
        self.take()
        if inner is None:
            raise self.error("empty parentheses", tok.pos)
        return inner


def parse_q(text: str, *, now_us: int) -> Node:
    """Parse a ``q`` string into a filter tree; ``now_us`` anchors ``since:24h`` and kin.

    Raises ``QuerySyntaxError`` with the 0-based position of the offending token.
    """
    if len(text) > MAX_LENGTH:
        # Echo only the part that fits: the whole text would make the error as large.
        raise QuerySyntaxError(f"query longer than {MAX_LENGTH} characters", MAX_LENGTH,
                               text[:MAX_LENGTH])
    tokens = _Lexer(text, now_us).tokens()
    return _Parser(tokens, text).parse()
