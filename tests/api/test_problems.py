"""Errors nobody planned for: an exception escaping a route answers a 500 in the route's own
error shape with a request id (body, ``X-Request-ID`` header and the logged traceback),
never Starlette's plain-text page, and never the exception's text."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.responses import StreamingResponse

from conftest import Server

SECRET = "password=hunter2 in /srv/auditstream"


async def boom() -> None:
    raise RuntimeError(SECRET)


async def boom_key() -> None:
    {}["missing"]  # noqa: B018 - a KeyError, as a bug would raise it


async def boom_midstream() -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"first": "chunk"}\n'
        raise RuntimeError(SECRET)

    return StreamingResponse(body(), media_type="application/x-ndjson")


@pytest.fixture
def boom_server(server: Server) -> Server:
    # Test-only routes, added to the running app (the router is read per request).
    for path in ("/v1/test-boom", "/compat/turen/test-boom", "/compat/turqoa/test-boom",
                 "/compat/platform-audit/test-boom", "/compat/vaultterm/test-boom",
                 "/compat/authpi/test-boom"):
        server.app.add_api_route(path, boom, methods=["GET"])
    server.app.add_api_route("/v1/test-key-error", boom_key, methods=["GET"])
    server.app.add_api_route("/v1/test-midstream", boom_midstream, methods=["GET"])
    return server


def check_500(r: httpx.Response, content_type: str) -> str:
    assert r.status_code == 500
    assert r.headers["content-type"] == content_type
    request_id = r.headers["x-request-id"]
    assert len(request_id) == 32
    assert request_id in r.text
    assert SECRET not in r.text and "Traceback" not in r.text
    return request_id


@pytest.mark.parametrize("path", ["/v1/test-boom", "/v1/test-key-error"])
def test_native_unexpected_error_is_a_problem_with_a_request_id(
    boom_server: Server, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="auditstream"):
        r = boom_server.client().get(path)
    request_id = check_500(r, "application/problem+json")
    doc = r.json()
    assert (doc["status"], doc["title"], doc["request_id"]) == (
        500, "Internal Server Error", request_id)
    logged = [rec for rec in caplog.records if request_id in rec.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is in the log


@pytest.mark.parametrize(("profile", "shape"), [
    ("turen", lambda d: d["error"]["code"] and d["error"]["message"]),
    ("turqoa", lambda d: d["type"] == "error" and d["message"]),
    ("platform-audit", lambda d: isinstance(d["detail"], str)),
    ("vaultterm", lambda d: d["error"] and d["message"]),
    ("authpi", lambda d: d),
])
def test_compat_unexpected_error_takes_the_profile_shape(boom_server: Server, profile: str,
                                                         shape: Any) -> None:
    r = boom_server.client().get(f"/compat/{profile}/test-boom")
    check_500(r, "application/json")
    assert shape(r.json())


def test_the_server_keeps_serving_after_an_unexpected_error(boom_server: Server) -> None:
    c = boom_server.client(boom_server.key("acme"))
    assert c.get("/v1/test-boom").status_code == 500
    assert c.get("/v1/events").status_code == 200  # same connection, still usable


def test_a_stream_that_fails_midway_is_cut_not_completed(boom_server: Server) -> None:
    """Once the status is sent a problem document can no longer be: the response is
    aborted, so a client cannot take a cut export for a complete one."""
    with pytest.raises(httpx.HTTPError):
        boom_server.client().get("/v1/test-midstream").read()
