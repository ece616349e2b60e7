"""The ``syslog`` sink against real UDP, TCP and TLS listeners; what they get is parsed
back strictly (RFC 6587 octet counting, RFC 5424, CEF) and compared exactly."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from auditstream import __version__
from auditstream.delivery.guard import DestinationPolicy
from auditstream.delivery.payload import FORMATS, Format, formatter
from auditstream.delivery.sinks import SINKS
from auditstream.delivery.sinks.syslog import UDP_MAX_MSG, SyslogConfig, SyslogSink
from auditstream.errors import InvalidRequest

from .events import HOSTILE, context, event, stub
from .listeners import Cert, StreamListener, UdpListener, parse_cef, parse_syslog, self_signed

pytestmark = pytest.mark.anyio


def readable(sock: socket.socket, timeout: float = 10) -> None:
    """Wait until ``sock`` has something to read (or was closed). ``poll``, not
    ``select``: a process that opened many files (the whole suite) gets descriptors past
    select's 1,024."""
    p = select.poll()
    p.register(sock, select.POLLIN)
    p.poll(timeout * 1000)


@pytest.fixture
def tcp() -> Iterator[StreamListener]:
    listener = StreamListener()
    yield listener
    listener.close()


@pytest.fixture
def udp() -> Iterator[UdpListener]:
    listener = UdpListener()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def cert() -> Cert:
    return self_signed("localhost")


@pytest.fixture
def tls(cert: Cert, tmp_path: Path) -> Iterator[StreamListener]:
    listener = StreamListener(cert.server_context(tmp_path))
    yield listener
    listener.close()


def sink(port: int, fmt: Format = "native", allow: str = "127.0.0.1", timeout: float = 5.0,
         **config: Any) -> SyslogSink:
    cfg = SyslogConfig.model_validate({"host": "127.0.0.1", "port": port, **config})
    return SyslogSink(cfg, fmt, context(allow, timeout))


async def test_tcp_octet_counted_rfc5424_with_a_json_body(tcp: StreamListener) -> None:
    s = sink(tcp.port)
    events = [event(seq=1), event(seq=2, severity="info", type="user.logout")]
    outcome = await s.send(events, "m")
    await s.aclose()
    assert outcome.ok and not outcome.refused
    frames = tcp.take(2)
    one, two = (parse_syslog(f) for f in frames)
    assert one.pri == 13 * 8 + 3 and two.pri == 13 * 8 + 6
    assert (one.timestamp, one.hostname, one.app_name, one.procid, one.msgid) == (
        "2026-01-02T03:04:05.123456Z", "audit.example", "auditstream", "-", "user.login")
    assert two.msgid == "user.logout"
    assert one.sd_id == "auditstream@32473"
    assert one.params == {"tenant": "acme", "seq": "1", "id": events[0]["id"]}
    assert json.loads(one.msg) == events[0] and json.loads(two.msg) == events[1]
    assert b"\n" not in one.msg
    assert tcp.accepted == 1


async def test_severity_map_and_facility(tcp: StreamListener) -> None:
    s = sink(tcp.port, facility=4, app_name="audit-app")
    severities = ["critical", "high", "medium", "low", "info"]
    assert (await s.send([event(seq=n, severity=v) for n, v in enumerate(severities, 1)],
                         "m")).ok
    await s.aclose()
    parsed = [parse_syslog(f) for f in tcp.take(5)]
    assert [p.pri for p in parsed] == [4 * 8 + sev for sev in (2, 3, 4, 5, 6)]
    assert {p.app_name for p in parsed} == {"audit-app"}


@pytest.mark.parametrize("fmt", FORMATS)
async def test_json_body_of_every_format(tcp: StreamListener, fmt: Format) -> None:
    s = sink(tcp.port, fmt)
    e = event(description=HOSTILE)
    assert (await s.send([e], "m")).ok
    await s.aclose()
    assert json.loads(parse_syslog(tcp.take(1)[0]).msg) == formatter(fmt, "audit.example")(e)


async def test_hostile_header_and_structured_data(tcp: StreamListener) -> None:
    s = sink(tcp.port)
    hostile = event(tenant='t"e\\n]a=nt ]"', type="a b\tc/é\x00" + "x" * 40, id="evt_a]b",
                    description=HOSTILE, title=HOSTILE, actor={"name": HOSTILE})
    assert (await s.send([hostile], "m")).ok
    await s.aclose()
    [frame] = tcp.take(1)
    parsed = parse_syslog(frame)
    assert parsed.params == {"tenant": 't"e\\n]a=nt ]"', "seq": "1", "id": "evt_a]b"}
    assert parsed.msgid == ("a_b_c/__" + "x" * 40)[:32]
    assert json.loads(parsed.msg) == hostile


async def test_cef_body_and_its_escaping(tcp: StreamListener) -> None:
    s = sink(tcp.port, body="cef")
    hostile = event(type="x|y\\z=\nw", title=HOSTILE, description=HOSTILE + "\r\n.",
                    outcome="a=b", category="c\\d",
                    actor={"name": "bob", "id": "u=1", "ip": "2001:db8::1"},
                    source={"ip": "not an ip"}, subject={"type": "file", "id": "a|b"})
    assert (await s.send([hostile, event(seq=2, title=None, description=None,
                                         actor=None, subject=None, source=None)], "m")).ok
    await s.aclose()
    first, second = (parse_syslog(f) for f in tcp.take(2))
    cef = parse_cef(first.msg.decode())
    no_breaks = HOSTILE.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    assert cef.header == ["CEF:0", "auditstream", "auditstream", __version__,
                          "x|y\\z= w", no_breaks, "8"]
    assert cef.extension == {
        "rt": "1767323045123", "cat": "c\\d", "act": "x|y\\z=\nw", "outcome": "a=b",
        "suser": "bob", "suid": "u=1", "src": "2001:db8::1",
        "cs2": "file:a|b", "cs2Label": "subject", "msg": HOSTILE + "\r\n.",
        "externalId": hostile["id"], "cs1": "acme", "cs1Label": "tenant",
        "cn1": "1", "cn1Label": "seq", "dvchost": "audit.example"}
    plain = parse_cef(second.msg.decode())
    assert plain.header[4:] == ["user.login", "user.login", "8"]
    assert plain.extension == {
        "rt": "1767323045123", "cat": "auth", "act": "user.login", "outcome": "failure",
        "externalId": event(seq=2)["id"], "cs1": "acme", "cs1Label": "tenant",
        "cn1": "2", "cn1Label": "seq", "dvchost": "audit.example"}
    # The raw text: header pipes and backslashes escaped, extension '=' and breaks.
    raw = first.msg.decode()
    assert raw.startswith(f"CEF:0|auditstream|auditstream|{__version__}|x\\|y\\\\z= w|")
    assert "msg=a\"b\\\\c]d|e\\=f\\ng\\rh <script>" in raw


async def test_a_redacted_event(tcp: StreamListener) -> None:
    json_sink, cef_sink = sink(tcp.port), sink(tcp.port, body="cef")
    assert (await json_sink.send([stub()], "m")).ok
    assert (await cef_sink.send([stub()], "m")).ok
    await json_sink.aclose()
    await cef_sink.aclose()
    # Two connections: which message the listener reads first is not given.
    frames = sorted((parse_syslog(f) for f in tcp.take(2)),
                    key=lambda m: m.msg.lstrip(b"\xef\xbb\xbf").startswith(b"CEF:"))
    as_json, as_cef = frames
    assert json.loads(as_json.msg) == stub()
    assert parse_cef(as_cef.msg.decode()).extension == {
        "rt": "1767323045123", "cat": "auth", "act": "user.login", "outcome": "failure",
        "externalId": stub()["id"], "cs1": "acme", "cs1Label": "tenant",
        "cn1": "1", "cn1Label": "seq", "dvchost": "audit.example"}


@pytest.mark.parametrize(("severity", "cef_severity"), [
    ("info", "1"), ("low", "3"), ("medium", "5"), ("high", "8"), ("critical", "10")])
async def test_cef_severity(tcp: StreamListener, severity: str, cef_severity: str) -> None:
    s = sink(tcp.port, body="cef")
    assert (await s.send([event(severity=severity)], "m")).ok
    await s.aclose()
    assert parse_cef(parse_syslog(tcp.take(1)[0]).msg.decode()).header[6] == cef_severity


async def test_udp_one_datagram_per_event(udp: UdpListener) -> None:
    s = sink(udp.port, transport="udp")
    events = [event(seq=1), event(seq=2)]
    assert (await s.send(events, "m")).ok
    await s.aclose()
    got = [parse_syslog(d) for d in udp.take(2)]
    assert [json.loads(g.msg) for g in got] == events
    assert got[1].params["seq"] == "2"


async def test_udp_cuts_a_long_message_on_a_utf8_boundary(udp: UdpListener) -> None:
    s = sink(udp.port, transport="udp")
    for pad in ("", "x"):  # two bytes a character: one of these puts the limit mid-character
        long = event(description=pad + "é" * 10_000)
        full = json.dumps(long, ensure_ascii=False, separators=(",", ":")).encode()
        if full[UDP_MAX_MSG] & 0xC0 == 0x80:
            break
    assert (await s.send([long], "m")).ok
    await s.aclose()
    parsed = parse_syslog(udp.take(1)[0])  # decodes the whole datagram strictly
    assert parsed.msg == full[:UDP_MAX_MSG - 1]


async def test_tcp_does_not_cut_a_long_message(tcp: StreamListener) -> None:
    s = sink(tcp.port)
    long = event(description="é" * 100_000)
    assert (await s.send([long], "m")).ok
    await s.aclose()
    assert json.loads(parse_syslog(tcp.take(1)[0]).msg) == long


async def test_the_connection_is_kept_and_reopened_after_the_receiver_closes_it(
        tcp: StreamListener) -> None:
    s = sink(tcp.port)
    assert (await s.send([event(seq=1)], "m")).ok
    assert (await s.send([event(seq=2)], "m")).ok
    assert [parse_syslog(f).params["seq"] for f in tcp.take(2)] == ["1", "2"]
    assert tcp.accepted == 1
    tcp.drop_connections()
    # Wait for the close to reach this side (the sink looks for it before writing).
    assert s._conn is not None
    readable(s._conn.sock)
    assert (await s.send([event(seq=3)], "m")).ok
    await s.aclose()
    assert parse_syslog(tcp.take(1)[0]).params["seq"] == "3"
    assert tcp.accepted == 2


async def test_concurrent_sends_share_one_connection_and_keep_frames_whole(
        tcp: StreamListener) -> None:
    s = sink(tcp.port)
    batches = [[event(seq=n * 10 + i, description="x" * 50_000) for i in range(3)]
               for n in range(4)]
    outcomes = await asyncio.gather(*(s.send(b, "m") for b in batches))
    await s.aclose()
    assert all(o.ok for o in outcomes)
    seqs = sorted(int(parse_syslog(f).params["seq"]) for f in tcp.take(12))
    assert seqs == sorted(e["seq"] for b in batches for e in b)
    assert tcp.accepted == 1


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_bytes_from_the_receiver_do_not_drop_the_connection(
        cert: Cert, tmp_path: Path, transport: str) -> None:
    # TLS 1.3 session tickets arrive after the handshake, and some receivers talk back:
    # bytes waiting on the socket are not the receiver closing it.
    chatty = StreamListener(cert.server_context(tmp_path) if transport == "tls" else None,
                            reply=b"hello")
    s = sink(chatty.port, transport=transport, tls_verify=False)
    try:
        assert (await s.send([event(seq=1)], "m")).ok
        chatty.take(1)
        assert s._conn is not None
        chatty.go.set()
        readable(s._conn.sock)  # the reply is there, unread by asyncio
        assert (await s.send([event(seq=2)], "m")).ok
        assert parse_syslog(chatty.take(1)[0]).params["seq"] == "2"
        assert chatty.accepted == 1
    finally:
        await s.aclose()
        chatty.close()


async def test_a_receiver_down_is_an_outage_and_the_next_send_reconnects(
        tcp: StreamListener) -> None:
    s = sink(tcp.port)
    assert (await s.send([event(seq=1)], "m")).ok
    tcp.take(1)
    assert s._conn is not None
    tcp.close()  # the receiver goes down: its connection closed, nothing listens
    readable(s._conn.sock)
    outcome = await s.send([event(seq=2)], "m")
    assert not outcome.ok and not outcome.refused and "ConnectionRefused" in (outcome.error or "")
    back = StreamListener(port=tcp.port)  # and comes back
    try:
        assert (await s.send([event(seq=2)], "m")).ok
        assert parse_syslog(back.take(1)[0]).params["seq"] == "2"
    finally:
        await s.aclose()
        back.close()


async def test_tls_with_a_trusted_ca_and_sni(tls: StreamListener, cert: Cert) -> None:
    s = sink(tls.port, allow="localhost", transport="tls", host="localhost",
             tls_ca=cert.pem, body="cef")
    assert (await s.send([event(seq=1), event(seq=2)], "m")).ok
    assert (await s.send([event(seq=3)], "m")).ok
    await s.aclose()
    assert [parse_syslog(f).params["seq"] for f in tls.take(3)] == ["1", "2", "3"]
    assert tls.server_names == ["localhost"] and tls.accepted == 1


async def test_tls_refuses_an_untrusted_certificate(tls: StreamListener) -> None:
    s = sink(tls.port, allow="localhost", transport="tls", host="localhost",
             tls_ca=self_signed("localhost").pem)  # another CA
    outcome = await s.send([event()], "m")
    await s.aclose()
    assert not outcome.ok and not outcome.refused
    assert "CERTIFICATE_VERIFY_FAILED" in (outcome.error or "")
    assert tls.frames.empty()


async def test_tls_refuses_the_system_store_for_a_self_signed_cert(
        tls: StreamListener) -> None:
    s = sink(tls.port, allow="localhost", transport="tls", host="localhost")
    outcome = await s.send([event()], "m")
    await s.aclose()
    assert not outcome.ok and "CERTIFICATE_VERIFY_FAILED" in (outcome.error or "")
    assert tls.frames.empty()


async def test_tls_checks_the_name(tls: StreamListener, cert: Cert) -> None:
    # The certificate names localhost and 127.0.0.2, not 127.0.0.1.
    s = sink(tls.port, transport="tls", tls_ca=cert.pem)
    outcome = await s.send([event()], "m")
    await s.aclose()
    assert not outcome.ok and "CERTIFICATE_VERIFY_FAILED" in (outcome.error or "")
    assert tls.frames.empty()


async def test_tls_verify_off_takes_any_certificate(tls: StreamListener) -> None:
    s = sink(tls.port, transport="tls", tls_verify=False)
    assert (await s.send([event()], "m")).ok
    await s.aclose()
    assert parse_syslog(tls.take(1)[0]).params["seq"] == "1"


async def test_a_receiver_that_never_answers_times_out(cert: Cert, tmp_path: Path) -> None:
    silent = StreamListener(cert.server_context(tmp_path), handshake=False)
    s = sink(silent.port, transport="tls", tls_verify=False, timeout=0.3)
    try:
        outcome = await s.send([event()], "m")
        assert not outcome.ok and not outcome.refused and outcome.error == "timed out"
    finally:
        await s.aclose()
        silent.close()


@pytest.mark.parametrize("transport", ["tcp", "udp", "tls"])
async def test_a_private_receiver_is_refused_unless_allowed(
        tcp: StreamListener, udp: UdpListener, transport: str) -> None:
    port = udp.port if transport == "udp" else tcp.port
    s = sink(port, allow="", transport=transport, tls_verify=False)
    outcome = await s.send([event()], "m")
    await s.aclose()
    assert not outcome.ok and not outcome.refused
    assert "AUDITSTREAM_PUSH_ALLOW_PRIVATE" in (outcome.error or "")
    assert tcp.accepted == 0 and udp.nothing()


def test_config(cert: Cert) -> None:
    assert SINKS["syslog"] is SyslogSink and SyslogSink.FORMATS == FORMATS
    assert SyslogSink.SECRETS == ()
    cfg = SyslogConfig.model_validate({"host": "siem.example"})
    assert (cfg.transport, cfg.body, cfg.facility, cfg.app_name, cfg.tls_verify,
            cfg.batch_size) == ("tcp", "json", 13, "auditstream", True, 100)
    for transport, port in (("udp", 514), ("tcp", 514), ("tls", 6514)):
        s = SyslogSink(SyslogConfig(host="siem.example", transport=transport), "native",
                       context())
        assert s.port == port
    assert SyslogConfig.model_validate({"host": "h", "tls_ca": cert.pem}).tls_ca == cert.pem
    for bad in ({"host": "h", "tls_ca": "not a pem"}, {"host": "h", "tls_ca": ""},
                {"host": "h", "facility": 24},
                {"host": "h", "transport": "http"}, {"host": "h", "body": "xml"},
                {"host": "h", "port": 0}, {"host": "h", "port": 65536},
                {"host": "h", "app_name": "a b"}, {"host": "h", "app_name": "x" * 49},
                {"host": "h/x"}, {"host": ""}, {"host": "h", "batch_size": 0},
                {"host": "h", "tls_verify": "no"}):
        with pytest.raises(pydantic.ValidationError):
            SyslogConfig.model_validate(bad)
    for host in ("127.0.0.1", "10.1.2.3", "[::1]", "169.254.169.254", "localhost"):
        with pytest.raises(InvalidRequest):
            SyslogSink.prepare(SyslogConfig(host=host), DestinationPolicy(), "native")
    assert SyslogSink.prepare(SyslogConfig(host="siem.example"), DestinationPolicy(),
                              "native") == {}


def test_the_tls_context_defaults() -> None:
    s = SyslogSink(SyslogConfig(host="siem.example", transport="tls"), "native", context())
    assert s._tls is not None and s._tls.verify_mode == ssl.CERT_REQUIRED
    assert s._tls.check_hostname and s._tls.minimum_version == ssl.TLSVersion.TLSv1_2
