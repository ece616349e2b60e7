"""The Python predicate compiler: the semantics the SQL compiler must share."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from auditstream.query.predicate import compile_predicate, text_term_tokens, tokenize
from auditstream.query.qlang import parse_q

TS = "2026-02-17T10:30:00Z"
TS_US = parse_time(TS)

EVENT: dict[str, Any] = {
    "id": "evt_01",
    "tenant": "acme",
    "seq": 42,
    "timestamp": TS,
    "received_at": "2026-02-17T10:30:00.250000Z",
    "type": "user.login",
    "category": "auth",
    "severity": "high",
    "outcome": "allow",
    "title": "Login from Nordic Star office",
    "description": "User alice logged in via SSO (Okta); deploy_bot v2.1 café naïve 東京",
    "tags": ["prod", "sso"],
    "requires_action": False,
    "incident_id": None,
    "actor": {"id": "alice", "type": "user", "admin": True},
    "subject": {"ecosystem": "npm", "name": "left-pad"},
    "source": {"ip": "10.0.0.1"},
    "location": {"zone": "eu-west-1"},
    "context": {
        "http_status": 500,
        "status_text": "500",
        "latency": 0.25,
        "retries": 1.0,
        "flag": True,
        "ids": [1, 2],
        "http": {"route": "/login", "method": "POST"},
        "nothing": None,
    },
}


def matches(node: Node, event: dict[str, Any] | None = None) -> bool:
    return compile_predicate(node)(EVENT if event is None else event)


def with_(**changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(EVENT)
    for key, value in changes.items():
        if value is ...:
            event.pop(key, None)
        else:
            event[key] = value
    return event


CASES: list[tuple[str, Node, bool]] = [
    ("all", All(), True),
    # Eq: strings, case-sensitive
    ("eq str", Eq("type", ("user.login",)), True),
    ("eq str any", Eq("type", ("x", "user.login")), True),
    ("eq str case", Eq("type", ("User.Login",)), False),
    ("eq str miss", Eq("type", ("user.logout",)), False),
    ("eq empty values", Eq("type", ()), False),
    ("eq dotted", Eq("actor.id", ("alice",)), True),
    ("eq deep", Eq("context.http.route", ("/login",)), True),
    ("eq deep miss", Eq("context.http.nope", ("/login",)), False),
    ("eq through non-dict", Eq("actor.id.x", ("alice",)), False),
    ("eq missing object", Eq("llm.model", ("gpt",)), False),
    ("eq missing top", Eq("assigned_to", ("bob",)), False),
    ("eq null value", Eq("incident_id", (None,)), False),
    ("eq null in filter", Eq("context.nothing", (None,)), False),
    # Eq: types
    ("num int", Eq("context.http_status", (500,)), True),
    ("num float equals int", Eq("context.http_status", (500.0,)), True),
    ("num int equals float", Eq("context.retries", (1,)), True),
    ("num vs str", Eq("context.http_status", ("500",)), False),
    ("str vs num", Eq("context.status_text", (500,)), False),
    ("qlang style both", Eq("context.http_status", ("500", 500)), True),
    ("qlang style both, str event", Eq("context.status_text", ("500", 500)), True),
    ("bool", Eq("actor.admin", (True,)), True),
    ("bool false", Eq("requires_action", (False,)), True),
    ("bool vs int", Eq("actor.admin", (1,)), False),
    ("int vs bool", Eq("context.retries", (True,)), False),
    ("bool vs str", Eq("actor.admin", ("true",)), False),
    ("list value", Eq("context.ids", (1,)), False),
    ("object value", Eq("context.http", ("x",)), False),
    # Eq on tags: contains any
    ("tags any", Eq("tags", ("sso",)), True),
    ("tags any of", Eq("tags", ("nope", "prod")), True),
    ("tags none", Eq("tags", ("dev",)), False),
    ("tags case", Eq("tags", ("PROD",)), False),
    ("tags typed", Eq("tags", ("prod", 1)), True),
    # Eq on time paths: microseconds
    ("eq timestamp", Eq("timestamp", (TS_US,)), True),
    ("eq timestamp other", Eq("timestamp", (TS_US + 1,)), False),
    ("eq timestamp str", Eq("timestamp", ("2026-02-17T11:30:00+01:00",)), True),
    ("eq received_at", Eq("received_at", (TS_US + 250_000,)), True),
    # Cmp: severity by rank
    ("sev >= high", Cmp("severity", ">=", "high"), True),
    ("sev > high", Cmp("severity", ">", "high"), False),
    ("sev >= critical", Cmp("severity", ">=", "critical"), False),
    ("sev <= high", Cmp("severity", "<=", "high"), True),
    ("sev < high", Cmp("severity", "<", "high"), False),
    ("sev > info", Cmp("severity", ">", "info"), True),
    ("sev < medium", Cmp("severity", "<", "medium"), False),
    # Cmp: timestamps
    ("ts >= same", Cmp("timestamp", ">=", TS_US), True),
    ("ts > same", Cmp("timestamp", ">", TS_US), False),
    ("ts < later", Cmp("timestamp", "<", TS_US + 1), True),
    ("ts <= earlier", Cmp("timestamp", "<=", TS_US - 1), False),
    ("ts str bound", Cmp("timestamp", ">=", "2026-02-17"), True),
    ("received_at fraction", Cmp("received_at", ">", TS_US + 249_999), True),
    # Cmp: numbers and strings
    ("num >=", Cmp("context.http_status", ">=", 500), True),
    ("num >", Cmp("context.http_status", ">", 500), False),
    ("num float bound", Cmp("context.http_status", "<", 500.5), True),
    ("num float value", Cmp("context.latency", "<", 1), True),
    ("num vs str value", Cmp("context.status_text", ">=", 100), False),
    ("str vs num value", Cmp("context.http_status", ">=", "100"), False),
    ("str lexicographic", Cmp("actor.id", "<", "bob"), True),
    ("str lexicographic 2", Cmp("actor.id", ">", "bob"), False),
    ("str not numeric", Cmp("context.status_text", ">", "1000"), True),
    ("bool never ordered", Cmp("actor.admin", ">=", 0), False),
    ("bool bound never", Cmp("actor.admin", ">=", True), False),
    ("missing never", Cmp("context.nope", ">=", 0), False),
    ("seq", Cmp("seq", ">", 41), True),
    ("list never", Cmp("tags", ">=", "a"), False),
    # Prefix
    ("prefix", Prefix("type", "user."), True),
    ("prefix empty", Prefix("type", ""), True),
    ("prefix miss", Prefix("type", "admin."), False),
    ("prefix case", Prefix("type", "User."), False),
    ("prefix number", Prefix("context.http_status", "5"), False),
    ("prefix missing", Prefix("llm.model", ""), False),
    ("prefix list", Prefix("tags", "pro"), False),
    # Exists
    ("exists", Exists("actor.id"), True),
    ("exists false bool", Exists("requires_action"), True),
    ("exists object", Exists("context.http"), True),
    ("exists null", Exists("incident_id"), False),
    ("exists nested null", Exists("context.nothing"), False),
    ("exists missing", Exists("llm.model"), False),
    # Text
    ("text word", Text(("nordic",)), True),
    ("text phrase", Text(("Nordic Star",)), True),
    ("text phrase punct", Text(("nordic-star",)), True),
    ("text phrase order", Text(("star nordic",)), False),
    ("text phrase gap", Text(("login nordic",)), False),
    ("text partial word", Text(("nord",)), False),
    ("text prefix", Text(("nord*",)), True),
    ("text phrase prefix", Text(("nordic st*",)), True),
    ("text prefix mid-phrase", Text(("nor* star",)), False),
    ("text description", Text(("okta",)), True),
    ("text all terms", Text(("nordic", "okta")), True),
    ("text one term fails", Text(("nordic", "azure")), False),
    ("text no cross-field phrase", Text(("office user",)), False),
    ("text underscore separates", Text(("deploy",)), True),
    ("text underscore phrase", Text(("deploy bot",)), True),
    ("text digits", Text(("v2 1",)), True),
    ("text dot is separator", Text(("v2.1",)), True),
    ("text unicode", Text(("CAFÉ",)), True),
    ("text diacritics fold like the store's unicode61", Text(("cafe",)), True),
    ("text cjk run is one token", Text(("東京",)), True),
    ("text empty term", Text(("",)), True),
    ("text star only", Text(("*",)), True),
    ("text punct only", Text(("--",)), True),
    ("text no terms", Text(()), True),
    ("text phrase in description", Text(("alice logged",)), True),
    ("text not in other fields", Text(("npm",)), False),
    # combinators
    ("and", And((Eq("type", ("user.login",)), Eq("actor.id", ("alice",)))), True),
    ("and one false", And((Eq("type", ("user.login",)), Eq("actor.id", ("bob",)))), False),
    ("and three", And((All(), Exists("seq"), Exists("type"), Exists("id"))), True),
    ("and empty", And(()), True),
    ("or", Or((Eq("actor.id", ("bob",)), Eq("actor.id", ("alice",)))), True),
    ("or none", Or((Eq("actor.id", ("bob",)), Eq("actor.id", ("carol",)))), False),
    ("or three", Or((Exists("llm.x"), Exists("llm.y"), Exists("seq"))), True),
    ("or with All", Or((Exists("llm.x"), All())), True),
    ("or empty", Or(()), False),
    ("not", Not(Eq("outcome", ("deny",))), True),
    ("not missing matches", Not(Eq("llm.model", ("gpt",))), True),
    ("not not", Not(Not(Exists("type"))), True),
]


@pytest.mark.parametrize(("node", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_semantics(node: Node, expected: bool) -> None:
    assert matches(node) is expected


def test_severity_missing_counts_as_info() -> None:
    for event in (with_(severity=...), with_(severity=None)):
        assert matches(Cmp("severity", "<=", "info"), event)
        assert matches(Cmp("severity", "<", "low"), event)
        assert not matches(Cmp("severity", ">", "info"), event)
        assert not matches(Cmp("severity", ">=", "low"), event)
        # ...but Eq keeps "missing never matches"
        assert not matches(Eq("severity", ("info",)), event)


def test_unknown_event_severity_never_compares() -> None:
    event = with_(severity="urgent")
    assert not matches(Cmp("severity", ">=", "info"), event)
    assert not matches(Cmp("severity", "<", "critical"), event)


def test_timestamp_with_offset_and_fraction() -> None:
    event = with_(timestamp="2026-02-17T11:30:00.5+01:00")
    assert matches(Cmp("timestamp", ">", TS_US), event)
    assert matches(Eq("timestamp", (TS_US + 500_000,)), event)


@pytest.mark.parametrize("value", ["not a time", None, 1771324200000, ...])
def test_bad_or_missing_event_timestamp_never_compares(value: Any) -> None:
    event = with_(timestamp=value)
    assert not matches(Cmp("timestamp", ">=", 0), event)
    assert not matches(Cmp("timestamp", "<", 2**62), event)
    assert not matches(Eq("timestamp", (TS_US,)), event)


def test_missing_title_and_description_are_empty_text() -> None:
    event = with_(title=None, description=...)
    assert not matches(Text(("nordic",)), event)
    assert matches(Text(("",)), event)


def test_tags_with_odd_elements() -> None:
    assert matches(Eq("tags", ("b",)), with_(tags=[["a"], "b"]))  # unhashable element
    assert not matches(Eq("tags", ("1",)), with_(tags=[1]))
    assert matches(Eq("tags", (1.0,)), with_(tags=[1]))
    assert not matches(Eq("tags", ("a",)), with_(tags="a"))  # not a list
    assert not matches(Eq("tags", ("a",)), with_(tags=...))


INVALID: list[Node] = [
    Eq("nope", ("x",)),
    Eq("actor", ("x",)),
    Exists("context."),
    Cmp("severity", ">=", "urgent"),
    Cmp("severity", ">=", 3),
    Cmp("timestamp", ">=", "not a time"),
    Cmp("timestamp", ">=", True),
    Eq("timestamp", ("soon",)),
    Prefix("timestamp", "2026"),
    Or((All(), Eq("nope", ("x",)))),
    And((All(), Not(Exists("nope")))),
]


@pytest.mark.parametrize("node", INVALID, ids=repr)
def test_invalid_trees_raise_at_compile_time(node: Node) -> None:
    with pytest.raises(ValueError):
        compile_predicate(node)


def test_unknown_node_type() -> None:
    with pytest.raises(TypeError):
        compile_predicate(Node())


def test_text_term_tokens() -> None:
    assert text_term_tokens("Nordic Star") == (("nordic", "star"), False)
    assert text_term_tokens("deploy fail*") == (("deploy", "fail"), True)
    assert text_term_tokens("*") == ((), False)
    assert text_term_tokens("a_b-c.d") == (("a", "b", "c", "d"), False)
    assert tokenize("Ünïcode 2×3 ½") == ["unicode", "2", "3", "½"]


def test_brief_example_end_to_end() -> None:
    now = parse_time("2026-02-17T12:00:00Z")
    text = 'severity:>=high type:user.* actor.id:alice -outcome:deny "Nordic Star" since:24h'
    pred = compile_predicate(parse_q(text, now_us=now))
    assert pred(EVENT)
    assert not pred(with_(outcome="deny"))
    assert not pred(with_(severity="medium"))
    assert not pred(with_(type="admin.login"))
    assert not pred(with_(timestamp="2026-02-16T11:59:59Z"))
    assert not pred(with_(title="Login from the Nordic office"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("context.http_status:500", True),  # number in the event
        ("context.status_text:500", True),  # string in the event
        ('context.http_status:"500"', False),  # quoted: string only
        ("context.http_status:>=500 context.http_status:<600", True),
        ("requires_action:false", True),
        ("actor.admin:true", True),
        ("incident_id:null", True),
        ("llm.model:null", True),
        ("actor.id:null", False),
        ("tags:sso", True),
        ("tags:prod,dev", True),
        ("type:user.* -tags:prod", False),
        ("type:admin.* OR actor.id:alice", True),
        ("(type:admin.* OR actor.id:bob) nordic", False),
        ("nordic star", True),
        ('"star nordic"', False),
        ("okta OR azure", True),
        ("severity:high,critical", True),
        ("severity:<high", False),
        ("until:2026-02-17T10:30:00Z", False),
        ("since:2026-02-17T10:30:00Z", True),
        ("context.http.route:/log*", True),
    ],
)
def test_qlang_end_to_end(text: str, expected: bool) -> None:
    assert compile_predicate(parse_q(text, now_us=TS_US + 3600_000_000))(EVENT) is expected


# --------------------------------------------------------------------------- Text oracle


def _reference_text_match(term: str, title: str, description: str) -> bool:
    """The Text rule spelt out literally: tokenize both, look for a contiguous run."""
    tokens, prefix = text_term_tokens(term)
    if not tokens:
        return True
    for field in (title, description):
        hay = tokenize(field)
        for start in range(len(hay) - len(tokens) + 1):
            window = hay[start : start + len(tokens)]
            if window[:-1] != list(tokens[:-1]):
                continue
            last, want = window[-1], tokens[-1]
            if last == want or (prefix and last.startswith(want)):
                return True
    return False


# A small alphabet so that hits are common: letters in both cases, digits, separators,
# an accented letter, a CJK character.
_CHARS = st.sampled_from(list("abAB1 _-.'é東"))
_TEXT = st.text(_CHARS, max_size=14)


@settings(max_examples=500, deadline=None)
@given(term=st.text(_CHARS, max_size=6), star=st.booleans(), title=_TEXT, description=_TEXT)
def test_text_matches_reference_tokenizer(
    term: str, star: bool, title: str, description: str
) -> None:
    term = term + "*" if star else term
    event = {"title": title, "description": description}
    assert matches(Text((term,)), event) == _reference_text_match(term, title, description)


def test_text_folds_like_the_stores_unicode61_tokenizer() -> None:
    """Live and push matching must find exactly what a search of the store finds."""
    from auditstream.dbapi import sqlite3

    words = ["Café", "crème", "ø", "Øre", "straße", "strasse", "œuvre", "İstanbul", "ǅemal",
             "ﬁle", "Ångström", "naïve", "ά", "e\u0301te", "Ω", "ß", "ħ", "ł", "đ", "Œ",
             "x\ue000y", "東京"]
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE f USING fts5(t, tokenize='unicode61')")
    conn.executemany("INSERT INTO f(rowid, t) VALUES (?, ?)", list(enumerate(words)))
    for w in words:
        for q in {w, w.lower(), w.upper(), "".join(c for c in w if c.isascii()) or w}:
            phrase = '"' + q.replace('"', '""') + '"'
            in_sql = {r for (r,) in conn.execute("SELECT rowid FROM f WHERE f MATCH ?",
                                                 (phrase,))}
            match = compile_predicate(Text((q,)))
            assert {i for i, x in enumerate(words) if match({"title": x})} == in_sql, q
