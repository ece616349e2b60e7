"""The ``q`` language parser: every construct, every error with its position."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.errors import QuerySyntaxError
from auditstream.model.times import parse_time
from auditstream.query.filter import (
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
)
from auditstream.query.qlang import parse_q

NOW = parse_time("2026-02-17T12:00:00Z")
HOUR = 3600 * 1_000_000
DAY = 24 * HOUR


def q(text: str) -> Node:
    return parse_q(text, now_us=NOW)


def test_brief_example() -> None:
    text = 'severity:>=high type:user.* actor.id:alice -outcome:allow "Nordic Star" since:24h'
    assert q(text) == And((
        Cmp("severity", ">=", "high"),
        Prefix("type", "user."),
        Eq("actor.id", ("alice",)),
        Not(Eq("outcome", ("allow",))),
        Text(("Nordic Star",)),
        Cmp("timestamp", ">=", NOW - DAY),
    ))


PARSES: list[tuple[str, Node]] = [
    # empty
    ("", All()),
    ("   \t\n ", All()),
    # plain equality, dotted paths
    ("type:user.login", Eq("type", ("user.login",))),
    ("actor.id:alice", Eq("actor.id", ("alice",))),
    ("subject.ecosystem:npm", Eq("subject.ecosystem", ("npm",))),
    ("location.zone:eu-west-1", Eq("location.zone", ("eu-west-1",))),
    ("context.a.b.c:x", Eq("context.a.b.c", ("x",))),
    ("outcome:Allow", Eq("outcome", ("Allow",))),  # case kept: Eq is case-sensitive
    # typed values: string first, then the number / bool
    ("context.http_status:500", Eq("context.http_status", ("500", 500))),
    ("context.ratio:0.5", Eq("context.ratio", ("0.5", 0.5))),
    ("context.n:-3", Eq("context.n", ("-3", -3))),
    ("context.n:1e3", Eq("context.n", ("1e3", 1000.0))),
    ("context.n:007", Eq("context.n", ("007", 7))),
    ("context.n:1.", Eq("context.n", ("1.",))),  # not a JSON-style number
    ("context.n:99999999999999999999", Eq("context.n", ("99999999999999999999",))),
    ("context.n:1e999", Eq("context.n", ("1e999",))),  # not finite: string only
    ("requires_action:true", Eq("requires_action", ("true", True))),
    ("requires_action:false", Eq("requires_action", ("false", False))),
    ("requires_action:True", Eq("requires_action", ("True",))),  # JSON spelling only
    ('context.http_status:"500"', Eq("context.http_status", ("500",))),  # quoted: string
    ('requires_action:"true"', Eq("requires_action", ("true",))),
    # null, exists
    ("incident_id:null", Not(Exists("incident_id"))),
    ('incident_id:"null"', Eq("incident_id", ("null",))),
    ("incident_id:*", Exists("incident_id")),
    ("-incident_id:*", Not(Exists("incident_id"))),
    # prefix
    ("type:user.*", Prefix("type", "user.")),
    ("actor.id:*bob*", Prefix("actor.id", "*bob")),  # only one trailing * is special
    ('type:"user.*"', Eq("type", ("user.*",))),
    ("type:a*b", Eq("type", ("a*b",))),
    # value lists
    ("outcome:allow,deny", Eq("outcome", ("allow", "deny"))),
    ("outcome:allow,allow", Eq("outcome", ("allow",))),
    ('actor.id:alice,"bob smith"', Eq("actor.id", ("alice", "bob smith"))),
    ("context.code:1,1.0,true", Eq("context.code", ("1", 1, "1.0", 1.0, "true", True))),
    ("type:a,user.*", Or((Eq("type", ("a",)), Prefix("type", "user.")))),
    ("type:a,null", Or((Eq("type", ("a",)), Not(Exists("type"))))),
    ('actor.id:"a,b"', Eq("actor.id", ("a,b",))),
    ('actor.id:""', Eq("actor.id", ("",))),
    # comparisons
    ("severity:>=high", Cmp("severity", ">=", "high")),
    ("severity:>low", Cmp("severity", ">", "low")),
    ("severity:<=MEDIUM", Cmp("severity", "<=", "medium")),
    ("severity:<critical", Cmp("severity", "<", "critical")),
    ("severity:high", Eq("severity", ("high",))),
    ("severity:High,critical", Eq("severity", ("high", "critical"))),
    ("severity:null", Not(Exists("severity"))),
    ("context.http_status:>=500", Cmp("context.http_status", ">=", 500)),
    ("context.latency:<0.25", Cmp("context.latency", "<", 0.25)),
    ("actor.id:>m", Cmp("actor.id", ">", "m")),
    ('context.http_status:>="500"', Cmp("context.http_status", ">=", "500")),
    ("seq:>100", Cmp("seq", ">", 100)),
    ("context.x:>true", Cmp("context.x", ">", "true")),
    ("context.x:>=*", Cmp("context.x", ">=", "*")),
    # time fields
    ("timestamp:>=2026-02-17", Cmp("timestamp", ">=", parse_time("2026-02-17"))),
    ("timestamp:<2026-02-17T10:30:00Z", Cmp("timestamp", "<", parse_time("2026-02-17T10:30:00Z"))),
    ("timestamp:>=2h", Cmp("timestamp", ">=", NOW - 2 * HOUR)),
    ("timestamp:>1771322400000", Cmp("timestamp", ">", 1771322400000 * 1000)),
    ("timestamp:2026-02-17T10:30:00Z", Eq("timestamp", (parse_time("2026-02-17T10:30:00Z"),))),
    ("received_at:>=1h", Cmp("received_at", ">=", NOW - HOUR)),
    ("timestamp:*", Exists("timestamp")),
    ("since:24h", Cmp("timestamp", ">=", NOW - DAY)),
    ("since:30m", Cmp("timestamp", ">=", NOW - 30 * 60 * 1_000_000)),
    ("since:7d", Cmp("timestamp", ">=", NOW - 7 * DAY)),
    ("until:1h", Cmp("timestamp", "<", NOW - HOUR)),
    ("since:2026-02-01", Cmp("timestamp", ">=", parse_time("2026-02-01"))),
    (
        'until:"2026-02-17T10:30:00+01:00"',
        Cmp("timestamp", "<", parse_time("2026-02-17T09:30:00Z")),
    ),
    (
        "since:2026-02-01 until:2026-02-02",
        And((
            Cmp("timestamp", ">=", parse_time("2026-02-01")),
            Cmp("timestamp", "<", parse_time("2026-02-02")),
        )),
    ),
    # free text
    ("deploy", Text(("deploy",))),
    ("deploy failed", Text(("deploy", "failed"))),
    ('"Nordic Star"', Text(("Nordic Star",))),
    ('say "he said \\"hi\\"" back\\slash', Text(("say", 'he said "hi"', "back\\slash"))),
    ('"a\\\\b"', Text(("a\\b",))),
    ('"a\\nb"', Text(("a\\nb",))),  # unknown escapes are kept verbatim
    ("fail*", Text(("fail*",))),
    ("or and not", Text(("or", "and", "not"))),  # keywords are upper-case only
    ('"OR"', Text(("OR",))),
    ("foo-bar", Text(("foo-bar",))),
    ('a"b:c', Text(('a"b:c',))),  # a quote inside a word is literal
    ('""', Text(("",))),
    # free-text runs: consecutive words share a Text node, others interrupt
    ("a type:x b c", And((Text(("a",)), Eq("type", ("x",)), Text(("b", "c"))))),
    ("a -b c", And((Text(("a",)), Not(Text(("b",))), Text(("c",))))),
    ('-"Nordic Star"', Not(Text(("Nordic Star",)))),
    ("NOT a b", And((Not(Text(("a",))), Text(("b",))))),
    # boolean structure
    ("a OR b", Or((Text(("a",)), Text(("b",))))),
    ("a b OR c", Or((Text(("a", "b")), Text(("c",))))),
    ("a OR b c", Or((Text(("a",)), Text(("b", "c"))))),
    ("a OR b OR c", Or((Text(("a",)), Text(("b",)), Text(("c",))))),
    ("a OR (b OR c)", Or((Text(("a",)), Text(("b",)), Text(("c",))))),
    ("(a OR b) c", And((Or((Text(("a",)), Text(("b",)))), Text(("c",))))),
    ("(a b) c", And((Text(("a", "b")), Text(("c",))))),
    ("((type:x))", Eq("type", ("x",))),
    ("type:x AND type:y", And((Eq("type", ("x",)), Eq("type", ("y",))))),
    ("a AND b", Text(("a", "b"))),  # an explicit AND is plain juxtaposition
    ("-(a OR b)", Not(Or((Text(("a",)), Text(("b",)))))),
    ("NOT (a)", Not(Text(("a",)))),
    ("NOT NOT a", Not(Not(Text(("a",))))),
    ("--a", Not(Not(Text(("a",))))),
    ("-type:x", Not(Eq("type", ("x",)))),
    ("NOT type:x", Not(Eq("type", ("x",)))),
    ("(type:a)OR(type:b)", Or((Eq("type", ("a",)), Eq("type", ("b",))))),
]


@pytest.mark.parametrize(("text", "expected"), PARSES, ids=[t or "<empty>" for t, _ in PARSES])
def test_parses(text: str, expected: Node) -> None:
    assert q(text) == expected


def test_equal_trees_also_agree_on_value_types() -> None:
    # Dataclass equality says (1,) == (True,); the parser's output must carry real types.
    node = q("context.code:1,true")
    assert isinstance(node, Eq)
    assert [type(v) for v in node.values] == [str, int, str, bool]


ERRORS: list[tuple[str, str, int]] = [
    # unknown fields: position of the field
    ("foo:bar", "unknown field 'foo'", 0),
    ("type:x actor:bob", "unknown field 'actor'", 7),
    ("tenant:acme", "unknown field 'tenant'", 0),
    ("a -nope.x:1", "unknown field 'nope.x'", 3),
    (":x", "unknown field ''", 0),
    ("https://example.com", "unknown field 'https'", 0),
    ("context.:x", "unknown field 'context.'", 0),
    ("context.a b:x", "unknown field 'b'", 10),
    # unterminated quotes: position of the opening quote
    ('"abc', "unterminated quote", 0),
    ('a "b\\"', "unterminated quote", 2),
    ('type:"abc', "unterminated quote", 5),
    ('type:a,"b', "unterminated quote", 7),
    # parentheses
    ("(a", "unbalanced parenthesis", 0),
    ("((a)", "unbalanced parenthesis", 0),
    ("(a) (b", "unbalanced parenthesis", 4),
    ("a)", "unbalanced parenthesis", 1),
    ("(a))", "unbalanced parenthesis", 3),
    (")", "unbalanced parenthesis", 0),
    ("type:a)", "unbalanced parenthesis", 6),
    ("()", "empty parentheses", 0),
    ("a ( )", "empty parentheses", 2),
    # empty values: where the value should begin
    ("type:", "empty value", 5),
    ("type: x", "empty value", 5),
    ("(type:)", "empty value", 6),
    ("severity:>=", "empty value", 11),
    ("type:a,", "empty value", 7),
    ("type:a,,b", "empty value", 7),
    ("type:,a", "empty value", 5),
    ("since:", "empty value", 6),
    # severities: position of the value
    ("severity:urgent", "bad severity 'urgent'", 9),
    ("severity:>=hgh", "bad severity 'hgh'", 11),
    ("severity:high,nope", "bad severity 'nope'", 14),
    ("severity:hi*", "bad severity 'hi*'", 9),
    ('severity:""', "bad severity ''", 9),
    # times
    ("since:yesterday", "bad time", 6),
    ("until:24x", "bad time", 6),
    ("since:*", "bad time", 6),
    ("since:>=24h", "bad time for since", 6),
    ("since:1h,2h", "bad time for since", 8),
    ("timestamp:>=soon", "bad time", 12),
    ("timestamp:2026*", "bad time", 10),
    ("timestamp:24h", "bad time", 10),  # durations only make sense in comparisons
    ("received_at:<2026-13-01", "bad time", 13),
    # dangling operators: position of the keyword
    ("OR", "dangling OR", 0),
    ("OR a", "dangling OR", 0),
    ("a OR", "dangling OR", 2),
    ("a OR OR b", "dangling OR", 2),
    ("(a OR) b", "dangling OR", 3),
    ("(OR a)", "dangling OR", 1),
    ("NOT", "dangling NOT", 0),
    ("a NOT", "dangling NOT", 2),
    ("NOT OR a", "dangling NOT", 0),
    ("(NOT)", "dangling NOT", 1),
    ("NOT NOT", "dangling NOT", 4),
    ("-", "dangling '-'", 0),
    ("a - b", "dangling '-'", 2),
    ("(a -)", "dangling '-'", 3),
    ("-OR a", "dangling '-'", 0),
    ("AND a", "dangling AND", 0),
    ("a AND", "dangling AND", 2),
    ("a AND OR b", "dangling AND", 2),
    # comparisons take one value; quotes must end a value
    ("seq:>1,2", "a comparison takes a single value", 6),
    ('type:"a"b', "after the closing quote", 8),
]


@pytest.mark.parametrize(("text", "reason", "position"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors(text: str, reason: str, position: int) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        q(text)
    err = info.value
    assert reason in err.reason
    assert err.position == position
    assert err.extra["query"] == text
    assert err.detail.endswith(f"at position {position}")


def test_unknown_field_message_names_the_rules() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        q("foo:bar")
    reason = info.value.reason
    assert "canonical field" in reason
    assert "actor/subject/source/location/context/llm" in reason
    assert "severity" in reason and "since/until" in reason


def test_bad_severity_message_lists_names() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        q("severity:urgent")
    assert "info, low, medium, high, critical" in info.value.reason


def test_relative_times_follow_now() -> None:
    assert parse_q("since:1h", now_us=5 * HOUR) == Cmp("timestamp", ">=", 4 * HOUR)


_ALPHABET = st.sampled_from(list('ab:.-*,"\\()<>= \tORNT') + ["OR", "NOT", "AND", "type", "1"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=14).map("".join))
def test_garbage_only_raises_query_syntax_error(text: str) -> None:
    try:
        node = q(text)
    except QuerySyntaxError as err:
        assert 0 <= err.position <= len(text)
    else:
        assert node is not None


# ---------------------------------------------------------------- limits (hostile input)

LIMIT_ERRORS: list[tuple[str, str, int]] = [
    ("(" * 400 + "a" + ")" * 400, "nested deeper than 32", 32),
    ("-" * 300 + "a", "nested deeper than 32", 32),
    ("NOT " * 300 + "a", "nested deeper than 32", 128),
    ("(-" * 20 + "a" + ")" * 20, "nested deeper than 32", 32),
    (" ".join(["a"] * 2000), "more than 256 terms", 512),
    (" OR ".join(["type:a"] * 300), "more than 256 terms", 256 * 10 + 5),
    ("type:" + ",".join(["a"] * 300), "more than 256 terms", 5 + 256 * 2),
    ("x" * 4097, "longer than 4096 characters", 4096),
    ("since:999999999999h", "bad time", 6),
    ("since:" + "1" * 5000, "longer than 4096", 4096),
    ("since:" + "1" * 30, "bad time", 6),
    ("timestamp:>=" + "1" * 400, "bad time", 12),
    ("timestamp:" + "1" * 400, "bad time", 10),
    ("until:²", "bad time", 6),
    ("seq:>" + "1" * 400, "bad seq", 5),
    ("seq:>=99999999999999999999999", "bad seq", 6),
    ("seq:>abc", "bad seq", 5),
    ("seq:<1.5", "bad seq", 5),
]


@pytest.mark.parametrize(("text", "reason", "position"), LIMIT_ERRORS,
                         ids=[e[0][:40] for e in LIMIT_ERRORS])
def test_limits_and_huge_values_are_syntax_errors(text: str, reason: str, position: int) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        q(text)
    assert reason in info.value.reason
    assert info.value.position == position
    assert len(info.value.extra["query"]) <= 4096  # a huge q is not echoed back whole


def test_limits_leave_room_for_real_queries() -> None:
    deep = "(" * 32 + "a" + ")" * 32
    assert q(deep) == Text(("a",))
    assert q("-" * 32 + "a") is not None
    assert isinstance(q(" ".join(f"context.k{i}:1" for i in range(256))), And)
    assert q("seq:>=9223372036854775807") == Cmp("seq", ">=", 2**63 - 1)
    assert q("x" * 4096) == Text(("x" * 4096,))


def test_prefix_may_end_in_the_last_code_point() -> None:
    assert q("type:abc\U0010ffff*") == Prefix("type", "abc\U0010ffff")
