"""The console's pages over HTTP: where ``/`` goes, the security headers of each kind of
response, and what the first load weighs."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from auditstream.settings import Settings
from conftest import Server

FIRST_LOAD_LIMIT = 300 * 1024


class Assets(HTMLParser):
    """The scripts and stylesheets a page loads, and anything inline it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "style" in a or any(k.startswith("on") for k in a):
            self.inline.append(f"<{tag} {a}>")
        if tag == "script":
            if a.get("src"):
                self.urls.append(str(a["src"]))
            else:
                self.inline.append("<script> without src")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "link" and a.get("rel") == "stylesheet":
            self.urls.append(str(a["href"]))


def test_root_redirects_to_the_console(shared_server: Server) -> None:
    with shared_server.client() as c:
        r = c.get("/")
        assert r.status_code == 302 and r.headers["location"] == "/console"


@pytest.mark.parametrize("path", ["/console", "/console?page=admin&q=type:x"])
def test_the_console_page_has_a_strict_csp_and_refuses_framing(shared_server: Server,
                                                               path: str) -> None:
    with shared_server.client() as c:
        r = c.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert "unsafe" not in csp
    assert directives["frame-ancestors"] == "'none'"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


def test_the_embed_page_may_be_framed_by_the_configured_origins(make_server: object) -> None:
    server = make_server(console_frame_ancestors="'self' https://app.example.com")  # type: ignore[operator]
    with server.client() as c:
        r = c.get("/console/embed?token=vt_x")
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'self' https://app.example.com" in csp
    assert "x-frame-options" not in r.headers and "unsafe" not in csp


@pytest.mark.parametrize("path", ["/v1/events", "/healthz", "/openapi.json", "/docs"])
def test_every_other_response_is_nosniff_and_unframeable(shared_server: Server,
                                                          path: str) -> None:
    with shared_server.client() as c:
        r = c.get(path)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_the_page_holds_no_inline_script_or_style_and_its_first_load_is_small(
        shared_server: Server) -> None:
    with shared_server.client() as c:
        page = c.get("/console")
        parser = Assets()
        parser.feed(page.text)
        assert parser.inline == []
        total = len(page.content)
        seen = set()
        todo = list(parser.urls)
        while todo:  # the modules the page imports, transitively
            url = todo.pop()
            if url in seen:
                continue
            seen.add(url)
            r = c.get(url)
            assert r.status_code == 200, url
            total += len(r.content)
            if url.endswith(".js"):
                todo += ["/console/static/" + m.lstrip("./")
                         for m in re.findall(r'from "(\./[^"]+)"', r.text)]
    assert {"/console/static/console.js", "/console/static/api.js",
            "/console/static/proof.js", "/console/static/uPlot.iife.min.js"} <= seen
    assert total < FIRST_LOAD_LIMIT, total


def test_a_frame_ancestors_setting_cannot_inject_directives() -> None:
    with pytest.raises(ValueError):
        Settings(console_frame_ancestors="'self'; script-src *")
