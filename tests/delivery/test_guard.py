"""The destination policy: private, loopback and link-local addresses are refused unless
allowed, checked on the address actually connected to."""

from __future__ import annotations

import pytest

from auditstream.delivery.clock import Clock
from auditstream.delivery.guard import DestinationPolicy, DestinationRefused
from auditstream.delivery.sinks import SinkContext
from auditstream.delivery.sinks.webhook import WebhookConfig, WebhookSink, new_secret
from auditstream.errors import InvalidRequest

from .receiver import Answer, Receiver

pytestmark = pytest.mark.anyio

REFUSED = ["127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.1.1",
           "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255",
           "::1", "::", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
           "ff02::1", "192.0.0.1", "198.18.0.1"]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_private_addresses_are_refused(address: str) -> None:
    with pytest.raises(DestinationRefused):
        DestinationPolicy("").check("receiver.example", address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    DestinationPolicy("").check("receiver.example", address)


def test_the_allow_list_takes_hosts_addresses_and_networks() -> None:
    policy = DestinationPolicy(" 127.0.0.1, 10.0.0.0/8 ,siem.internal., ")
    policy.check("x", "127.0.0.1")
    policy.check("x", "10.200.3.4")
    policy.check("SIEM.internal", "192.168.7.7")  # the name is allowed, whatever it resolves to
    with pytest.raises(DestinationRefused):
        policy.check("x", "127.0.0.2")
    with pytest.raises(DestinationRefused):
        policy.check("x", "169.254.169.254")


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "10.1.1.1", "localhost", "LOCALHOST.",
                                  "169.254.169.254"])
def test_literal_private_hosts_are_refused_at_create_time(host: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        DestinationPolicy("").check_literal("config.url", host)
    assert caught.value.errors[0]["field"] == "config.url"


async def test_a_name_is_checked_where_it_resolves_at_connect_time() -> None:
    """``localhost`` passes no literal check when it is only a name the sink resolves: the
    address it resolves to is refused, and nothing reaches the receiver."""
    receiver = Receiver()
    try:
        for allow, delivered in (("", False), ("127.0.0.1", True)):
            context = SinkContext(policy=DestinationPolicy(allow), clock=Clock(), timeout=2)
            sink = WebhookSink(WebhookConfig(url=f"http://localhost:{receiver.port}/",
                                             secret=new_secret()), "native", context)
            outcome = await sink.send([{"id": "e", "seq": 1}], "msg_1")
            await sink.aclose()
            assert outcome.ok is delivered, outcome
            if not delivered:
                assert "AUDITSTREAM_PUSH_ALLOW_PRIVATE" in (outcome.error or "")
                assert outcome.refused is False  # an outage: fixing the setting resumes it
        assert len(receiver.requests) == 1
    finally:
        receiver.stop()


async def test_redirects_are_not_followed() -> None:
    receiver = Receiver()
    try:
        receiver.default = Answer(307)
        context = SinkContext(policy=DestinationPolicy("127.0.0.1"), clock=Clock(), timeout=2)
        sink = WebhookSink(WebhookConfig(url=receiver.url, secret=new_secret()), "native",
                           context)
        outcome = await sink.send([{"id": "e", "seq": 1}], "msg_1")
        await sink.aclose()
        assert (outcome.ok, outcome.status_code, outcome.refused) == (False, 307, True)
        assert len(receiver.requests) == 1
    finally:
        receiver.stop()


async def test_at_most_the_configured_bytes_of_an_answer_are_read() -> None:
    """A receiver answering 50 MB costs the sender 4 KiB (and the start of it is kept)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    sent = {"bytes": 0}

    class Huge(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.send_header("content-length", str(50 * 2**20))
            self.end_headers()
            try:
                for _ in range(50 * 16):
                    self.wfile.write(b"x" * 65536)
                    sent["bytes"] += 65536
            except OSError:  # the sender hung up, as it should
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Huge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        context = SinkContext(policy=DestinationPolicy("127.0.0.1"), clock=Clock(), timeout=5,
                              max_response_bytes=4096)
        sink = WebhookSink(WebhookConfig(url=f"http://127.0.0.1:{server.server_port}/",
                                         secret=new_secret()), "native", context)
        outcome = await sink.send([{"id": "e", "seq": 1}], "msg_1")
        await sink.aclose()
        assert outcome.ok and outcome.response == "x" * 512
    finally:
        server.shutdown()
        server.server_close()
    assert sent["bytes"] < 50 * 2**20


def test_a_refused_destination_is_not_retried_at_once_but_a_blip_is() -> None:
    """The cause chain httpx builds: httpx.ConnectError from httpcore.ConnectError from the
    policy's refusal."""
    import httpcore
    import httpx

    from auditstream.delivery.sinks.http import _blip

    def chain(*excs: BaseException) -> BaseException:
        for outer, inner in zip(excs, excs[1:], strict=False):
            outer.__cause__ = inner
        return excs[0]

    assert not _blip(chain(httpx.ConnectError("no"), httpcore.ConnectError("no"),
                           DestinationRefused("127.0.0.1 is private")))
    assert _blip(chain(httpx.ConnectError("reset"), ConnectionResetError()))
    assert _blip(httpx.RemoteProtocolError("closed"))
    assert not _blip(httpx.ReadTimeout("slow"))
