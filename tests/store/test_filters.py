"""A store selects exactly the events ``query.predicate`` selects, per backend.

The filter tree has two compilers: a backend's (SQL for SQLite) and the Python predicate
the live stream and push rules use. Random trees (hypothesis, bounded) must select the same
events through the store's public ``count``, ``query``, ``scan`` and ``aggregate`` as the
predicate does over the same events, and through the stream hub's two paths (catching up
from the store, and live); full-text search has its semantics spelt out below.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditstream.integrity.checkpoint import generate_signer
from auditstream.model.ids import new_event_id
from auditstream.model.severity import SEVERITIES
from auditstream.model.times import format_us, parse_us
from auditstream.query.filter import All, And, Cmp, Eq, Exists, Node, Not, Or, Prefix, Text
from auditstream.query.predicate import compile_predicate
from auditstream.store.base import AggregateSpec, EventQuery, EventStore
from auditstream.stream.hub import StreamHub, Subscription, TenantTail

from .backends import BACKENDS, DEPLOYMENT, HOUR, INDEXED, T0

TYPES = ["install", "user.created", "user.deleted", "ais_gap", "llm.call"]
OUTCOMES = ["allow", "block", None]
ZONES = ["lng_terminal", "gate_3", None]
WORDS = ["nordic", "star", "blocked", "left", "pad", "vessel", "gap"]
STEP = 97_000_000  # 97 s between events: 300 events span eight hours, so rollups answer too
ACTORS = ["u1", "u2", 7, 7.5, "", None]  # an indexed path holding mixed types
ECOSYSTEMS = ["npm", "pip", "", None]  # indexed


def make_events(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(3)
    out = []
    for i in range(n):
        e: dict[str, Any] = {
            "id": new_event_id(), "tenant": "t", "timestamp": format_us(T0 + i * STEP),
            "received_at": format_us(T0), "type": rnd.choice(TYPES),
            "severity": rnd.choice(SEVERITIES),
        }
        if (o := rnd.choice(OUTCOMES)) is not None:
            e["outcome"] = o
        if rnd.random() < 0.5:
            e["category"] = rnd.choice(["auth", "install", ""])
        if (z := rnd.choice(ZONES)) is not None:
            e["location"] = {"zone": z}
        if rnd.random() < 0.6:
            words = rnd.sample(WORDS, 3)
            e["title"] = rnd.choice([" ".join(words).title(), "-".join(words).upper(),
                                     "_".join(words)])
        if rnd.random() < 0.3:
            e["description"] = " ".join(rnd.sample(WORDS, 2))
        if rnd.random() < 0.5:
            # Beside numbers and strings: what SQL reads as one (a bool as 1/0, an object or
            # a list as its JSON text) and a string that is such a text.
            e["context"] = {"http_status": rnd.choice([200, 404, 500, "500", 404.0, 0, 1,
                                                       {"a": 1}, [1, 2], '{"a":1}']),
                            "flag": rnd.choice([True, False])}
        if rnd.random() < 0.4:
            e["tags"] = rnd.sample(["a", "b", "c"], rnd.randint(0, 2))
        if (a := rnd.choice(ACTORS)) is not None:
            e["actor"] = {"id": a}
        if (s := rnd.choice(ECOSYSTEMS)) is not None:
            e["subject"] = {"ecosystem": s}
        out.append(e)
    return out


EVENTS = make_events(300)


@dataclass
class Loaded:
    store: EventStore
    runner: asyncio.Runner
    #: id → name in ``TEXTS`` of the events of tenant "text"
    texts: dict[str, str]


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def loaded(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """One store per backend holding ``EVENTS`` (and another tenant's), for every example."""
    runner = asyncio.Runner()
    store = BACKENDS[request.param].open(tmp_path_factory.mktemp("filters"),
                                         signer=generate_signer(DEPLOYMENT),
                                         indexed_paths=INDEXED)
    runner.run(store.append("t", [dict(e) for e in EVENTS]))
    runner.run(store.append("other", [dict(e, id=new_event_id(), tenant="other")
                                      for e in EVENTS[:50]]))
    texts = text_events()
    runner.run(store.append("text", list(texts.values())))
    yield Loaded(store, runner, {e["id"]: name for name, e in texts.items()})
    runner.run(store.close())
    runner.close()


paths = st.sampled_from(["type", "outcome", "category", "location.zone", "context.http_status",
                         "context.flag", "severity", "tags", "title", "actor.id",
                         "subject.ecosystem"])
scalars = st.one_of(st.sampled_from(TYPES + ["allow", "block", "lng_terminal", "a", "b",
                                             "auth", "", "u1", "npm"]),
                    st.sampled_from([200, 404, 500, "500", True, False, 500.0, 7, 7.5, 1, 0,
                                     -0.0, '{"a":1}', "[1,2]"]),
                    st.sampled_from(SEVERITIES))
leaves = st.one_of(
    st.builds(lambda p, v: Eq(p, tuple(v)), paths, st.lists(scalars, min_size=1, max_size=3)),
    st.builds(lambda op, v: Cmp("severity", op, v), st.sampled_from([">", ">=", "<", "<="]),
              st.sampled_from(SEVERITIES)),
    st.builds(lambda op, d: Cmp("timestamp", op, T0 + d * STEP),
              st.sampled_from([">", ">=", "<", "<="]), st.integers(-5, 305)),
    st.builds(lambda op, d: Cmp("timestamp", op, T0 + d * HOUR),
              st.sampled_from([">=", "<"]), st.integers(-1, 9)),
    st.builds(lambda p, op, v: Cmp(p, op, v),
              st.sampled_from(["context.http_status", "context.flag", "actor.id"]),
              st.sampled_from([">", "<="]), st.sampled_from([404, 450, "404", 7, "u1", 0, "a"])),
    st.builds(Prefix, st.sampled_from(["type", "outcome", "location.zone", "actor.id",
                                       "subject.ecosystem", "context.http_status", "tags"]),
              st.sampled_from(["user.", "i", "lng", "", "u", "n", "{", "["])),
    st.builds(Exists, st.sampled_from(["outcome", "category", "location.zone",
                                       "context.http_status", "title", "tags", "actor.id",
                                       "subject.ecosystem"])),
    st.builds(lambda ws: Text(tuple(ws)),
              st.lists(st.sampled_from(WORDS + ["NORDIC star", "bl*", "star gap", "left pad",
                                                "Vessel*", "ga*"]),
                       min_size=1, max_size=2)),
)
trees = st.recursive(
    leaves,
    lambda kids: st.one_of(
        st.builds(lambda c: And(tuple(c)), st.lists(kids, min_size=1, max_size=3)),
        st.builds(lambda c: Or(tuple(c)), st.lists(kids, min_size=1, max_size=3)),
        st.builds(Not, kids),
    ),
    max_leaves=6,
)
#: Group keys that hold only strings (how booleans group is ``test_aggregate``'s concern).
GROUPS = st.sampled_from([None, "type", "severity", "outcome", "category", "location.zone"])
INTERVALS = st.sampled_from([None, "hour", "day"])


def expected_buckets(events: list[dict[str, Any]], group: str | None,
                     interval: str | None) -> dict[tuple[Any, Any], int]:
    width = {"hour": HOUR, "day": 24 * HOUR}
    want: Counter[tuple[Any, Any]] = Counter()
    for e in events:
        key = None
        if group is not None:
            head, _, attr = group.partition(".")
            key = (e.get(head) or {}).get(attr) if attr else e.get(head)
        if group is not None and key in (None, ""):
            continue
        us = parse_us(e["timestamp"])
        want[us // width[interval] * width[interval] if interval else None, key] += 1
    return dict(want)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node=trees, group=GROUPS, interval=INTERVALS)
def test_the_store_selects_what_the_predicate_selects(
    loaded: Loaded, node: Node, group: str | None, interval: Any,
) -> None:
    store, run = loaded.store, loaded.runner.run
    pred = compile_predicate(node)
    matching = [e for e in EVENTS if pred(e)]
    want = {e["id"] for e in matching}

    assert run(store.count("t", node)) == len(want), node
    page = run(store.query("t", EventQuery(node, limit=len(EVENTS) + 1)))
    ids = [e["id"] for e in page.events]
    assert len(ids) == len(set(ids)) and set(ids) == want, node
    assert not page.has_more
    scanned = [e["id"] for b in run(_scan(store, node)) for e in b]
    assert set(scanned) == want, node
    got = {(b.ts, r.key): r.count for b in run(store.aggregate(
        "t", node, AggregateSpec(group_by=group, interval=interval))) for r in b.rows}
    assert got == expected_buckets(matching, group, interval), (node, group, interval)


#: Trees the random ones reach rarely, each once a difference between backends: -0.0 is 0
#: (ClickHouse's IN compares floats by bits); true is not 1, nor an object its JSON text
#: (SQLite's json_extract reads them so).
EDGES = [
    Eq("context.http_status", (-0.0,)),
    Eq("context.http_status", (-0.0, 1)),
    Eq("context.flag", (1,)),
    Eq("context.flag", (0, 1.0)),
    Eq("context.http_status", ('{"a":1}',)),
    Eq("context.http_status", ("[1,2]",)),
    Cmp("context.flag", ">=", 1),
    Cmp("context.flag", "<", 1),
    Cmp("context.http_status", ">", "Z"),
    Prefix("context.http_status", "{"),
    Prefix("tags", "["),
    Not(Eq("context.flag", (1,))),
]


@pytest.mark.parametrize("node", EDGES, ids=repr)
def test_the_store_selects_what_the_predicate_selects_at_the_edges(loaded: Loaded,
                                                                    node: Node) -> None:
    store, run = loaded.store, loaded.runner.run
    pred = compile_predicate(node)
    want = {e["id"] for e in EVENTS if pred(e)}
    page = run(store.query("t", EventQuery(node, limit=len(EVENTS) + 1)))
    assert {e["id"] for e in page.events} == want
    assert run(store.count("t", node)) == len(want)


async def _scan(store: EventStore, node: Node) -> list[list[dict[str, Any]]]:
    return [b async for b in store.scan("t", node, batch=128)]


# -- full-text search ------------------------------------------------------------------

TEXTS = {
    "padd": ("Blocked left-padd from npm", "The package was yanked"),
    "ais": ("AIS gap detected for MV Nordic Star", None),
    "star": ("Star gap nordic", "vessel"),
    "cafe": ("Café crème", "naïve résumé"),
    "deploy": ("DEPLOY FAILED", "deploy_failed on host_3"),
    "deployment": ("Deployment failure", None),
    "empty": (None, None),
    "private": ("\ue000 plain", None),  # unicode61 indexes private-use characters as words
}
EVERY = set(TEXTS)
#: Text(terms) → the events it matches: every term (ANDed) must occur in the title or the
#: description; a term of several words is a phrase within one field; a trailing ``*``
#: makes the last word a prefix; words are runs of letters and digits, compared without
#: case and without diacritics (FTS5 ``unicode61``); nothing in a term is query syntax.
TEXT_CASES: list[tuple[tuple[str, ...], set[str]]] = [
    (("nordic",), {"ais", "star"}),
    (("nordic star",), {"ais"}),  # a phrase: in this order, adjacent
    (("star nordic",), set()),
    (("nordic", "star"), {"ais", "star"}),  # terms: each anywhere
    (("star", "vessel"), {"star"}),  # terms may match different fields
    (("nordic vessel",), set()),  # a phrase never spans title and description
    (("NoRdIc",), {"ais", "star"}),  # case is folded
    (("bl*",), {"padd"}),
    (("deploy fail*",), {"deploy"}),  # the prefix is the last word's
    (("deploy*",), {"deploy", "deployment"}),
    (("deploy",), {"deploy"}),  # a word is a whole word
    (("host",), {"deploy"}),  # "_" separates words
    (("left padd",), {"padd"}),  # so does "-"
    (("3",), {"deploy"}),
    (("cafe",), {"cafe"}),  # Latin diacritics are folded, both ways
    (("CAFÉ",), {"cafe"}),
    (("creme", "resume"), {"cafe"}),
    (("naive résume",), {"cafe"}),
    (("",), EVERY),  # a term without words matches every event
    (("--", "*"), EVERY),
    ((), EVERY),
    (('"nordic" OR yanked',), set()),  # FTS5 syntax is just words here
    (("NEAR(nordic star)",), set()),
    (("package AND yanked",), set()),
    (("yanked*", "npm"), {"padd"}),
    (("\ue000",), {"private"}),
    (("\ue000*",), {"private"}),
]
DIACRITICS = {"cafe", "creme", "naive résume"}  # base letters for accented ones


def _text_case_id(case: tuple[tuple[str, ...], set[str]]) -> str:
    return "+".join(case[0]) or "()"


def text_events() -> dict[str, dict[str, Any]]:
    out = {}
    for name, (title, description) in TEXTS.items():
        e: dict[str, Any] = {"id": new_event_id(), "tenant": "text",
                             "timestamp": format_us(T0), "received_at": format_us(T0),
                             "type": "x", "severity": "info"}
        if title is not None:
            e["title"] = title
        if description is not None:
            e["description"] = description
        out[name] = e
    return out


@pytest.mark.parametrize("case", TEXT_CASES, ids=_text_case_id)
def test_full_text_semantics(loaded: Loaded, case: tuple[tuple[str, ...], set[str]]) -> None:
    terms, expected = case
    store, run = loaded.store, loaded.runner.run
    page = run(store.query("text", EventQuery(Text(terms), limit=100)))
    assert {loaded.texts[e["id"]] for e in page.events} == expected
    assert run(store.count("text", Text(terms))) == len(expected)


@pytest.mark.parametrize("case", TEXT_CASES, ids=_text_case_id)
def test_the_predicate_matches_text_like_the_store(
    case: tuple[tuple[str, ...], set[str]],
) -> None:
    terms, expected = case
    pred = compile_predicate(Text(terms))
    assert {name for name, e in text_events().items() if pred(e)} == expected


# -- the live stream selects what the store selects ------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node=trees)
def test_the_stream_selects_what_the_store_selects(loaded: Loaded, node: Node) -> None:
    """A subscription catching up reads through the store's filter (SQL for SQLite); a
    live one tests the Python predicate, through the tail's index by type. Both must
    select the same events, in seq order."""
    store, run = loaded.store, loaded.runner.run
    stored = [e for b in run(_scan(store, All())) for e in b]
    pred = compile_predicate(node)
    want = [e["seq"] for e in stored if pred(e)]

    async def caught_up() -> list[int]:
        hub = StreamHub(store)
        sub = await hub.subscribe("t", node, after_seq=0)
        seqs: list[int] = []
        while not sub.live:
            seqs += [i.seq for i in await hub.next_batch(sub, timeout=0)]
        await hub.close()
        return seqs

    assert run(caught_up()) == want, node
    tail = TenantTail(StreamHub(store), "t", 0)
    sub = Subscription("t", node, 0, limit=len(stored))
    sub.live = True
    tail.add(sub)
    tail.offer(stored)
    assert [i.seq for i in sub.queue] == want, node


def test_subscriptions_share_a_predicate_only_for_the_same_filter() -> None:
    """Filter nodes compare ``True == 1 == 1.0``; their predicates must not be shared."""
    flag, one, real = (Subscription("t", Eq("context.flag", (v,)), 0) for v in (True, 1, 1.0))
    event = {"context": {"flag": True}}
    assert flag.match(event) and not one.match(event) and not real.match(event)
    assert Subscription("t", Eq("context.flag", (True,)), 0).match is flag.match
