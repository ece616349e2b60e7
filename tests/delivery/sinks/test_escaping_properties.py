"""Escaping rules as properties: any text a stored event may hold survives each format
and parses back exactly (the receivers' strict parsers), within each limit."""

from __future__ import annotations

import html
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.delivery.sinks.slack import clip
from auditstream.delivery.syslog_message import BOM, cef, message

from .events import event
from .listeners import parse_cef, parse_syslog

# Any Unicode a stored event can hold (JSON strings: no lone surrogates), weighted
# towards the characters the formats escape.
text = st.text(st.one_of(st.sampled_from(list('"\\]|=\r\n &<>[ ')),
                         st.characters(exclude_categories=("Cs",))), max_size=60)


def utf16(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


@settings(max_examples=300, deadline=None)
@given(tenant=text.filter(bool), id_=text.filter(bool), type_=text.filter(bool),
       title=text, description=text, outcome=text)
def test_rfc5424_and_cef_round_trip(tenant: str, id_: str, type_: str, title: str,
                                    description: str, outcome: str) -> None:
    e = event(tenant=tenant, id=id_, type=type_, title=title or None,
              description=description or None, outcome=outcome or None)

    def body(ev: dict[str, Any]) -> bytes:
        return cef(ev, "audit.example").encode()

    parsed = parse_syslog(message(e, body, facility=13, hostname="h", app_name="a"))
    assert parsed.params == {"tenant": tenant, "seq": "1", "id": id_}
    assert len(parsed.msgid) <= 32
    got = parse_cef(parsed.msg.decode())
    one_line = type_.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    assert got.header[4] == one_line
    ext = got.extension
    assert (ext["act"], ext["cs1"], ext["externalId"]) == (type_, tenant, id_)
    assert ext.get("msg", "") == description and ext.get("outcome", "") == outcome
    json_msg = message(e, orjson.dumps, facility=13, hostname="h", app_name="a")
    assert orjson.loads(json_msg.split(BOM, 1)[1]) == e


@settings(max_examples=300, deadline=None)
@given(value=text, limit=st.integers(min_value=2, max_value=40))
def test_slack_clip(value: str, limit: int) -> None:
    out = clip(value, limit)
    assert utf16(out) <= limit
    assert "<" not in out and ">" not in out
    if out.endswith("…") and html.unescape(out) != value:
        kept = out[:-1]
        # Never a cut escape: every & starts a whole &amp; &lt; or &gt;.
        assert kept.count("&") == kept.count("&amp;") + kept.count("&lt;") + kept.count("&gt;")
        assert value.startswith(html.unescape(kept))
    else:
        assert html.unescape(out) == value
