"""The console in a real Chromium (Debian's, never a downloaded one) against a real server
with the demo data: sign in, search, zoom, proofs (verified, and tampered ones failing),
live tail, the embeddable viewer's walls, CSRF, the keyboard.

One server and one browser for the module; each test gets a fresh browser context (its
own cookies). Waits are on what the page shows, never on time."""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from auditstream.settings import Settings
from conftest import Server, free_port, start_server

playwright_api = pytest.importorskip("playwright.sync_api")

#: Debian's Chromium (`.ci/run` installs it); AUDITSTREAM_TEST_CHROMIUM may name another.
CHROMIUM = os.environ.get("AUDITSTREAM_TEST_CHROMIUM") or shutil.which("chromium") or \
    "/usr/bin/chromium"
PASSWORD = "correct-horse-battery"
TIMEOUT_MS = 15_000

# Skipped only off CI: `.ci/run` installs Chromium, so there a missing one is a failure.
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason=f"no Chromium at {CHROMIUM} (.ci/run installs it)")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the demo tenant and data, and an admin user of it."""
    from auditstream.auth.catalog import Catalog

    settings = Settings(port=free_port(), db=str(tmp_path_factory.mktemp("c") / "a.db"),
                        demo=True, workers=1, push_allow_private="127.0.0.1",
                        push_max_attempts=1, push_retry_base_seconds=0.05)
    server, thread, app = start_server(settings)
    catalog = Catalog(settings.db)
    catalog.create_user("demo", "admin", PASSWORD, ["admin", "events:read"])
    yield Server(f"http://127.0.0.1:{settings.port}", settings, app, catalog)
    server.should_exit = True
    thread.join(timeout=20)
    catalog.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def session_cookie(console: Server) -> dict[str, Any]:
    """One sign-in for the module (Argon2 is slow on purpose); each context gets its cookie."""
    with console.client() as c:
        r = c.post("/v1/session", json={"username": "admin", "password": PASSWORD})
        assert r.status_code == 200, r.text
        return {"name": "auditstream_session", "value": r.cookies["auditstream_session"],
                "url": console.url, "httpOnly": True, "sameSite": "Strict"}


@pytest.fixture(scope="module")
def signed_in_page(browser: Any, console: Server, session_cookie: dict[str, Any]
                   ) -> Iterator[tuple[Any, list[str]]]:
    """One tab for the module's tests, signed in as ``admin`` (a new renderer per test
    cost more than the tests themselves)."""
    context = new_context(browser, console)
    context.add_cookies([session_cookie])
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg, errors
    context.close()


@pytest.fixture
def page(signed_in_page: tuple[Any, list[str]]) -> Iterator[Any]:
    pg, errors = signed_in_page
    pg.goto("about:blank")
    errors.clear()
    yield pg
    pg.unroute_all()
    assert errors == []  # no uncaught script error on any page


def new_context(browser: Any, console: Server) -> Any:
    context = browser.new_context(base_url=console.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    return context


def searched(page: Any, after: int = 0) -> int:
    """Wait for a search newer than ``after`` to have drawn its page and histogram."""
    # Functions, not strings: the page's CSP forbids eval, and so string predicates.
    page.wait_for_function("n => Number(document.body.dataset.searched || 0) > n", arg=after)
    return int(page.evaluate("() => Number(document.body.dataset.searched)"))


def column(page: Any, index: int) -> list[str]:
    return list(page.locator(f"#results tbody tr td:nth-child({index})").all_text_contents())


def api(console: Server) -> httpx.Client:
    return console.client(console.key("demo", "admin", "events:read", "events:write"))


# ------------------------------------------------------------------ the tests


def test_sign_in_and_out(browser: Any, console: Server) -> None:
    context = new_context(browser, console)
    page = context.new_page()
    page.goto("/")
    assert page.url.endswith("/console")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "wrong password!")
    page.click("#login-form button")
    page.locator("#login-error").filter(has_text="wrong password").wait_for()
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button")
    searched(page)
    assert page.locator("#who").text_content() == "admin"
    assert page.locator("#results tbody tr").count() == 50
    cookie = next(c for c in page.context.cookies() if c["name"] == "auditstream_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("() => document.cookie") == ""  # no script can read it
    page.click("#signout")
    page.locator("#login").wait_for()
    assert page.context.request.get("/v1/session").status == 401
    context.close()


def test_paste_an_api_key(browser: Any, console: Server) -> None:
    context = new_context(browser, console)
    page = context.new_page()
    page.goto("/console")
    page.fill("input[name=key]", console.key("demo", "events:read"))
    page.click("#key-form button")
    searched(page)
    assert page.locator("#results tbody tr").count() == 50
    assert page.locator("#who").text_content() == "API key"
    context.close()


def test_search_with_q_and_the_url_holds_the_view(page: Any) -> None:
    page.goto("/console")
    n = searched(page)
    page.fill("#q", "type:install outcome:block")
    page.press("#q", "Enter")
    n = searched(page, n)
    assert set(column(page, 3)) == {"install"} and set(column(page, 4)) == {"block"}
    assert "q=type%3Ainstall+outcome%3Ablock" in page.url
    link = page.url
    page.goto("/console")  # elsewhere, then the link again: the same view
    searched(page)
    page.goto(link)
    searched(page)
    assert page.input_value("#q") == "type:install outcome:block"
    assert set(column(page, 3)) == {"install"}
    # A facet adds its filter.
    page.locator("#facets button[data-facet^='severity:']").first.click()
    searched(page)
    assert "severity%3A" in page.url


def test_a_bad_q_says_why(page: Any) -> None:
    page.goto("/console?q=" + "type%3A%28")
    page.locator("#search-error").filter(has_text="position").wait_for()


def test_completion_offers_fields_then_frequent_values(page: Any) -> None:
    page.goto("/console")
    searched(page)
    page.click("#q")
    page.keyboard.type("sev")
    page.locator("#complete li").filter(has_text="severity:").first.wait_for()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    assert page.input_value("#q") == "severity:"
    page.locator("#complete li").filter(has_text="severity:info").wait_for()


def test_zoom_the_histogram_by_dragging(page: Any) -> None:
    page.goto("/console?range=24h")
    n = searched(page)
    box = page.locator("#histogram .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.55, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, y, steps=8)
    page.mouse.up()
    searched(page, n)
    assert "range=custom" in page.url
    since = datetime.fromisoformat(page.input_value("#since") + "+00:00")
    until = datetime.fromisoformat(page.input_value("#until") + "+00:00")
    span = (until - since).total_seconds()
    assert 3600 <= span <= 8 * 3600  # about a fifth of the day, whole hours
    times = [datetime.fromisoformat(t.replace(" ", "T") + "+00:00")
             for t in column(page, 1)]
    assert times and all(since <= t <= until for t in times)
    # A click on a bar zooms to that bar: one hour.
    n = searched(page)
    box = page.locator("#histogram .u-over").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] - 2)
    searched(page, n)
    since = datetime.fromisoformat(page.input_value("#since") + "+00:00")
    until = datetime.fromisoformat(page.input_value("#until") + "+00:00")
    assert (until - since).total_seconds() == 3600


def test_open_an_event_and_see_its_proof_verified(page: Any, console: Server) -> None:
    with api(console) as c:
        event = c.get("/v1/events", params={"limit": 1, "q": "type:install"}).json()["data"][0]
    page.goto(f"/console?q=type:install&event={event['id']}")
    status = page.locator("#proof-status.verified")
    status.wait_for()
    assert status.text_content().startswith("Verified against checkpoint ")
    assert f"seq {event['seq']}" in page.locator("#detail-title").text_content()
    page.keyboard.press("Escape")
    page.locator("#detail").wait_for(state="hidden")
    assert "event=" not in page.url


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _tamper_path(proof: dict[str, Any]) -> None:
    proof["inclusion_path"][0] = _flip(proof["inclusion_path"][0])


def _tamper_root(proof: dict[str, Any]) -> None:
    lines = proof["checkpoint"].split("\n")
    lines[2] = _flip(lines[2])
    proof["checkpoint"] = "\n".join(lines)


def _tamper_signature(proof: dict[str, Any]) -> None:
    body, _, sig = proof["checkpoint"].rstrip("\n").rpartition(" ")
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1
    proof["checkpoint"] = f"{body} {base64.b64encode(bytes(raw)).decode()}\n"


def _tamper_leaf(proof: dict[str, Any]) -> None:
    proof["leaf_hash"] = _flip(proof["leaf_hash"])


@pytest.mark.parametrize("tamper,reason", [
    (_tamper_path, "does not lead to the checkpoint's root"),
    (_tamper_root, "does not lead to the checkpoint's root"),
    (_tamper_signature, "signature does not verify"),
    (_tamper_leaf, "do not hash to the proof's leaf"),
])
def test_a_tampered_proof_fails(page: Any, console: Server, tamper: Any, reason: str) -> None:
    """The server's answer is altered on its way to the page (a test fixture serves it):
    the browser's own check must catch each kind of change."""
    with api(console) as c:
        event = c.get("/v1/events", params={"limit": 1}).json()["data"][0]

    def serve_tampered(route: Any) -> None:
        answer = route.fetch()
        doc = orjson.loads(answer.body())
        tamper(doc["proof"])
        route.fulfill(response=answer, body=orjson.dumps(doc))

    page.route("**/v1/events/*?include=proof", serve_tampered)
    page.goto(f"/console?event={event['id']}")
    status = page.locator("#proof-status.failed")
    status.wait_for()
    assert reason in status.text_content()
    assert page.locator("#proof-status.verified").count() == 0


def test_without_ed25519_in_webcrypto_the_page_says_the_signature_was_not_checked(
        browser: Any, console: Server, session_cookie: dict[str, Any]) -> None:
    context = new_context(browser, console)
    context.add_cookies([session_cookie])
    # A browser without Ed25519: importKey refuses the algorithm, as such browsers do.
    context.add_init_script("""(() => {
        const importKey = crypto.subtle.importKey.bind(crypto.subtle);
        crypto.subtle.importKey = (format, key, alg, ...rest) =>
            (alg && (alg.name || alg) === 'Ed25519')
                ? Promise.reject(new DOMException('Unrecognized name.', 'NotSupportedError'))
                : importKey(format, key, alg, ...rest);
    })()""")
    page = context.new_page()
    with api(console) as c:
        event = c.get("/v1/events", params={"limit": 1}).json()["data"][0]
    page.goto(f"/console?event={event['id']}")
    status = page.locator("#proof-status.partial")
    status.wait_for()
    assert "signature was NOT checked" in status.text_content()
    assert "Inclusion verified against checkpoint" in status.text_content()
    context.close()


def test_export_the_current_search(page: Any) -> None:
    page.goto("/console?q=type:install+outcome:block&range=30d")
    searched(page)
    shown = page.locator("#results tbody tr").count()
    with page.expect_download() as download:
        page.click("[data-export=ndjson]")
    lines = Path(download.value.path()).read_text().splitlines()
    events = [orjson.loads(line) for line in lines]
    assert len(events) >= shown > 0
    assert {(e["type"], e["outcome"]) for e in events} == {("install", "block")}
    with page.expect_download() as download:
        page.click("[data-export=csv]")
    assert download.value.suggested_filename.endswith(".csv")
    with page.expect_download() as download:
        page.click("[data-export=parquet]")
    assert Path(download.value.path()).read_bytes()[:4] == b"PAR1"


def test_live_tail_receives_a_new_event(page: Any, console: Server) -> None:
    page.goto("/console?page=live")
    page.wait_for_function("() => document.body.dataset.live === 'subscribed'")
    with api(console) as c:
        r = c.post("/v1/events", json={"type": "login", "title": "tail-me-please"})
        assert r.status_code == 201
    row = page.locator("#live-table tbody tr").filter(has_text="tail-me-please")
    row.wait_for()
    assert str(r.json()["data"][0]["seq"]) in row.text_content()
    # Paused, an event arrives; on resume the gap is filled from the store, with a marker.
    page.click("#live-toggle")
    page.locator("#live-status").filter(has_text="paused").wait_for()
    with api(console) as c:
        assert c.post("/v1/events", json={"type": "login", "title": "while-paused"}
                      ).status_code == 201
    page.click("#live-toggle")
    page.locator("#live-table tbody tr").filter(has_text="while-paused").wait_for()
    assert page.locator("#live-table tr.marker").filter(has_text="filled from the store"
                                                        ).count() == 1


def test_live_tail_fills_the_gap_of_a_lost_connection_from_the_store(
        page: Any, console: Server) -> None:
    """The first stream the page opens is cut after one event (a test fixture serves it
    and ends it); an event is stored while the page is cut off; the page reconnects with
    that event's seq as Last-Event-ID, and the server's replay from the store fills the
    gap: each event shown once, with markers."""
    with api(console) as c:
        before = c.post("/v1/events", json={"type": "login", "title": "before-the-cut"}
                        ).json()["data"][0]
        raw = c.get(f"/v1/events/{before['id']}").content
    opened: list[str] = []

    def cut_first_stream(route: Any) -> None:
        opened.append(route.request.headers.get("last-event-id", ""))
        if len(opened) > 1:
            route.continue_()
            return
        body = (f": subscribed after seq {before['seq'] - 1}\n\n"
                f"id: {before['seq']}\nevent: event\ndata: ").encode() + raw + b"\n\n"
        route.fulfill(status=200, content_type="text/event-stream", body=body)

    page.route("**/v1/events/stream**", cut_first_stream)
    page.goto("/console?page=live")
    page.locator("#live-table tr.marker").filter(has_text="connection lost").wait_for()
    with api(console) as c:
        assert c.post("/v1/events", json={"type": "login", "title": "during-the-cut"}
                      ).status_code == 201
    page.locator("#live-table tbody tr").filter(has_text="during-the-cut").wait_for()
    assert opened[:2] == ["", str(before["seq"])]
    assert page.locator("#live-table tr.marker").filter(has_text="filled from the store"
                                                        ).count() == 1
    titles = page.locator("#live-table tbody tr:not(.marker) td:nth-child(6)"
                          ).all_text_contents()
    assert titles.count("before-the-cut") == 1 and titles.count("during-the-cut") == 1


def test_an_embed_token_cannot_read_outside_its_scope_or_write(page: Any,
                                                                console: Server) -> None:
    with api(console) as c:
        made = c.post("/v1/viewer-tokens", json={"q": "type:install", "ttl_seconds": 600})
        assert made.status_code == 201
        outside = c.get("/v1/events", params={"limit": 1, "q": "-type:install"}
                        ).json()["data"][0]["id"]
    token = made.json()["token"]
    page.goto(made.json()["embed_url"])
    n = searched(page)
    assert "token" not in page.url  # kept out of the address bar and history
    assert set(column(page, 3)) == {"install"}
    assert page.locator("#nav").is_hidden()
    page.fill("#q", "type:login OR -type:install")
    page.press("#q", "Enter")
    searched(page, n)
    assert set(column(page, 3)) <= {"install"}
    statuses = page.evaluate("""async ([token, outside]) => {
        const h = {Authorization: 'Bearer ' + token, 'Content-Type': 'application/json'};
        const post = (url, body) =>
          fetch(url, {method: 'POST', headers: h, body}).then(r => r.status);
        return {
          read_outside: (await fetch('/v1/events/' + outside, {headers: h})).status,
          write: await post('/v1/events', '{"type":"install"}'),
          new_token: await post('/v1/viewer-tokens', '{}'),
          redact: await post('/v1/events/' + outside + '/redact', '{}'),
          keys: (await fetch('/v1/keys', {headers: h})).status,
        };
    }""", [token, outside])
    assert statuses == {"read_outside": 404, "write": 403, "new_token": 403, "redact": 403,
                        "keys": 403}


def test_csrf_is_refused(page: Any) -> None:
    page.goto("/console?page=admin")
    page.locator("#keys tbody tr").first.wait_for()
    # The page's own cookie, without the session's CSRF token: refused.
    status = page.evaluate("""() => fetch('/v1/keys', {method: 'POST',
        headers: {'Content-Type': 'application/json'}, body: '{"name": "forged"}'})
        .then(r => r.status)""")
    assert status == 403
    # The console itself sends it: the key is made and shown once.
    page.fill("#key-create input[name=name]", "from-the-console")
    page.click("#key-create button")
    page.locator("#key-secret").filter(has_text="sk_live_").wait_for()
    names = page.locator("#keys tbody tr td:nth-child(2)").all_text_contents()
    assert "from-the-console" in names and "forged" not in names


def test_keyboard_slash_arrows_enter_escape(page: Any) -> None:
    page.goto("/console")
    searched(page)
    page.keyboard.press("/")
    assert page.evaluate("() => document.activeElement.id") == "q"
    page.keyboard.press("Escape")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    selected = page.locator("#results tbody tr.selected")
    assert selected.count() == 1
    second = page.locator("#results tbody tr").nth(1).get_attribute("data-id")
    assert selected.get_attribute("data-id") == second
    page.keyboard.press("Enter")
    page.locator("#proof-status.verified").wait_for()
    assert f"event={second}" in page.url
    page.keyboard.press("Escape")
    page.locator("#detail").wait_for(state="hidden")


def test_integrations_state_test_attempts_dead_letters_and_redeliver(
        page: Any, console: Server) -> None:
    from delivery.receiver import Answer, Receiver

    receiver = Receiver()
    try:
        with console.client(console.key("demo", "admin", "events:write")) as admin:
            r = admin.post("/v1/integrations", json={
                "name": "siem-hook", "kind": "webhook", "rule": "type:console.push",
                "config": {"url": receiver.url, "batch_size": 1}})
            assert r.status_code == 201, r.text
            page.goto("/console?page=integrations")
            row = page.locator("#integrations-table tbody tr").filter(has_text="siem-hook")
            row.filter(has_text="active").wait_for()
            row.get_by_role("button", name="send test event").click()
            page.locator("#integrations-status").filter(has_text='"ok":true').wait_for()
            assert receiver.requests[0].json()["data"][0]["type"] == "auditstream.test"
            # The receiver refuses the next event: with one attempt allowed here, it is a
            # dead letter at once.
            receiver.answer(Answer(422))
            assert admin.post("/v1/events", json={"type": "console.push"}).status_code == 201
            receiver.wait_for(lambda: any(q.status == 422 for q in receiver.requests))
        page.goto("/console?page=integrations")
        row.get_by_role("button", name="attempts").click()
        detail = page.locator("#integration-detail")
        detail.filter(has_text="Dead letters (1)").wait_for()
        page.locator("#attempts-table tbody tr").filter(has_text="test").filter(
            has_text="200").wait_for()
        page.locator("#attempts-table tbody tr").filter(has_text="deliver").filter(
            has_text="422").wait_for()
        detail.get_by_role("button", name="redeliver").click()
        receiver.wait_for(lambda: len(receiver.delivered()) == 2)
        assert receiver.delivered()[1]["type"] == "console.push"
        with console.client(console.key("demo", "admin")) as admin:  # saved, not only sent
            receiver.wait_for(lambda: admin.get(
                f"/v1/integrations/{r.json()['id']}").json()["dead_letters"] == 0)
        row.get_by_role("button", name="attempts").click()
        detail.filter(has_text="Dead letters (0)").wait_for()
    finally:
        receiver.stop()


def test_results_page_with_the_cursor_as_you_scroll(page: Any) -> None:
    page.goto("/console?range=30d")
    searched(page)
    assert page.locator("#results tbody tr").count() == 50
    page.locator("#more").scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelectorAll('#results tbody tr').length >= 100")
    ids = page.locator("#results tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert len(ids) == len(set(ids))

