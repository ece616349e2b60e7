"""The OpenAPI document is the contract: every route declares what it reads, what it
answers and how it fails, and /docs works without the internet.

What a route *reads* is observed, not assumed: the routes parse their query strings by
hand, so a recording ``QueryParams`` notes every name a route looks up while it serves a
real request, and each such name must be declared.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from openapi_spec_validator import validate
from starlette.datastructures import QueryParams
from starlette.requests import HTTPConnection

from auditstream.api.native.export import EXPORT_PARAMS
from auditstream.api.openapi import api_routes
from auditstream.query.params import AGGREGATE_PARAMS, FILTER_PARAMS, PAGE_PARAMS
from conftest import Server

TENANT = "demo"
FILTER_ROUTES = {
    # route → names its hand-written parser accepts besides any canonical field or path
    ("get", "/v1/events"): FILTER_PARAMS | (PAGE_PARAMS - {"include"}),
    ("get", "/v1/events/aggregate"): FILTER_PARAMS | AGGREGATE_PARAMS,
    ("get", "/v1/events/export"): FILTER_PARAMS | EXPORT_PARAMS,
    ("get", "/v1/llm/events"): FILTER_PARAMS | {"provider", "model", "order", "limit", "cursor"},
    ("get", "/v1/llm/usage"): FILTER_PARAMS | {"provider", "model", "group_by", "interval"},
}
#: Documentation pages and their assets: not API operations.
#: Routes that are no API operation: the docs, and the live stream's SSE face (an endless
#: text/event-stream that a client generated from the document, or the fuzzer, must not
#: open blindly; docs/stream.md describes it with its WebSocket face).
NOT_OPERATIONS = {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json",
                  "/v1/events/stream", "/", "/console", "/console/embed"}


class RecordingQueryParams(QueryParams):
    """Query parameters that note every name looked up by name."""

    seen: set[str] = set()

    def get(self, key: Any, default: Any = None) -> Any:
        self.seen.add(key)
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        self.seen.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: Any) -> bool:
        self.seen.add(key)
        return super().__contains__(key)

    def getlist(self, key: Any) -> list[Any]:
        self.seen.add(key)
        return super().getlist(key)


@pytest.fixture
def api(server: Server) -> tuple[Server, dict[str, Any], str, str]:
    """The server, its document, an admin key of the demo tenant and one event id."""
    key = server.key(TENANT, "events:read", "events:write", "admin")
    with server.client(key) as c:
        r = c.post("/v1/events", content=orjson.dumps(
            {"type": "install", "outcome": "block", "subject": {"ecosystem": "npm"}}))
        assert r.status_code == 201, r.text
        event_id = r.json()["data"][0]["id"]
        doc = c.get("/openapi.json").json()
    return server, doc, key, event_id


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield method, path, op


def concrete(path: str, event_id: str) -> str:
    return path.replace("{event_id}", event_id).replace("{account_id}", TENANT)


def test_document_is_valid_openapi(api: Any) -> None:
    _, doc, _, _ = api
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_every_route_is_in_the_document(api: Any) -> None:
    server, doc, _, _ = api
    documented = {(m, p) for m, p, _ in operations(doc)}
    for route in api_routes(server.app.routes):
        if route.path_format in NOT_OPERATIONS:
            assert not route.include_in_schema
            continue
        for method in route.methods:
            assert (method.lower(), route.path_format) in documented, route.path_format


def test_every_operation_declares_answers_and_errors(api: Any) -> None:
    _, doc, _, _ = api
    schemas = doc["components"]["schemas"]
    for method, path, op in operations(doc):
        where = f"{method.upper()} {path}"
        responses = op["responses"]
        ok = [code for code in responses if code.startswith("2")]
        assert ok, where
        for code, response in responses.items():
            if code == "204":
                continue  # No Content: nothing to declare
            media = response.get("content")
            assert media, f"{where} {code}: no content declared"
            for body in media.values():
                schema = body.get("schema")
                assert schema, f"{where} {code}: no schema"
                if "$ref" in schema:
                    assert schema["$ref"].rsplit("/", 1)[1] in schemas, schema
        assert "500" in responses, f"{where}: the unexpected-error shape is not declared"
        if any(p["in"] == "query" for p in op.get("parameters", [])) or "requestBody" in op:
            assert {"400", "422"} & set(responses), f"{where}: bad input is not declared"
        assert "422" not in responses or path.startswith("/compat/platform-audit/"), (
            f"{where}: only platform-audit answers FastAPI's 422")
        for param in op.get("parameters", []):
            assert param.get("description") or param["in"] == "header", (where, param)
            assert param.get("schema"), (where, param)
        for name in re.findall(r"{(\w+)}", path):
            assert any(p["name"] == name and p["in"] == "path"
                       for p in op.get("parameters", [])), (where, name)


def test_native_errors_are_problem_json_and_profiles_use_their_own_shape(api: Any) -> None:
    _, doc, _, _ = api
    shapes: dict[str, set[str]] = {}
    for _, path, op in operations(doc):
        family = path.split("/")[2] if path.startswith("/compat/") else "native"
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")) and code != "422":
                for media, body in response["content"].items():
                    shapes.setdefault(family, set()).add(f"{media} {body['schema']['$ref']}")
    assert shapes.pop("native") == {
        "application/problem+json #/components/schemas/Problem"}
    expected = {"turen": "TurenError", "turqoa": "TurqoaError",
                "platform-audit": "HTTPError", "vaultterm": "VaultTermError",
                "authpi": "ApiError"}
    assert {k: {s.rsplit("/", 1)[1] for s in v} for k, v in shapes.items()} == {
        k: {v} for k, v in expected.items()}
    problem = doc["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])
    field_error = doc["components"]["schemas"]["FieldError"]
    assert set(field_error["properties"]) == {"index", "field", "reason"}


def test_filter_routes_declare_every_name_their_parser_reserves(api: Any) -> None:
    _, doc, _, _ = api
    for (method, path), names in FILTER_ROUTES.items():
        params = doc["paths"][path][method]["parameters"]
        declared = {p["name"] for p in params}
        assert names <= declared, (path, names - declared)
        free = [p for p in params if p["schema"].get("type") == "object"]
        assert len(free) == 1 and free[0]["explode"], "any other dotted path is declared"


def test_every_name_a_route_reads_is_declared(api: Any, monkeypatch: Any) -> None:
    server, doc, key, event_id = api
    cached = "_query_params"

    def recording(self: HTTPConnection) -> QueryParams:
        if not isinstance(getattr(self, cached, None), RecordingQueryParams):
            setattr(self, cached, RecordingQueryParams(self.scope["query_string"]))
        return getattr(self, cached)  # type: ignore[no-any-return]

    monkeypatch.setattr(HTTPConnection, "query_params", property(recording))
    with server.client(key) as c:
        for method, path, op in operations(doc):
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            RecordingQueryParams.seen = set()
            r = c.request(method.upper(), concrete(path, event_id))
            assert r.status_code < 500, (path, r.text)
            read = RecordingQueryParams.seen
            assert read <= declared, f"{method.upper()} {path} reads undeclared {read - declared}"


def test_protected_routes_declare_security(api: Any) -> None:
    server, doc, _, event_id = api
    assert doc["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key",
        "description": doc["components"]["securitySchemes"]["ApiKey"]["description"]}
    assert doc["components"]["securitySchemes"]["Bearer"]["scheme"] == "bearer"
    with server.client() as anonymous:
        for method, path, op in operations(doc):
            r = anonymous.request(method.upper(), concrete(path, event_id))
            schemes = {name for req in op.get("security", []) for name in req}
            if r.status_code == 401:
                assert {"ApiKey", "Bearer"} <= schemes, f"{path} is protected, undeclared"
                assert {"401", "403"} <= set(op["responses"]), path
            else:
                assert not schemes, f"{path} answers {r.status_code} without a credential"


def _asset_urls(html: str) -> list[str]:
    """Every URL the page loads: tags' src/href, ReDoc's spec-url, Swagger UI's url."""
    return re.findall(r'(?:src|href|spec-url)="([^"]+)"', html) + re.findall(
        r"url: '([^']+)'", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_everything_from_this_server(server: Server, page: str) -> None:
    with server.client() as c:
        r = c.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "http://" not in r.text and "https://" not in r.text, "an external URL"
        urls = _asset_urls(r.text)
        assert any(u.endswith(".js") for u in urls) and "/openapi.json" in urls, urls
        for url in urls:
            asset = c.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 0, url
        scripts = [u for u in urls if u.endswith(".js")]
        assert all(c.get(u).headers["content-type"].startswith(
            ("text/javascript", "application/javascript")) for u in scripts)


def test_docs_authorize_sends_the_key(server: Server) -> None:
    """What Swagger UI's Authorize sends (the declared scheme's header) is accepted."""
    key = server.key(TENANT, "events:read")
    with server.client() as c:
        scheme = c.get("/openapi.json").json()["components"]["securitySchemes"]["ApiKey"]
        r = c.get("/v1/events", headers={scheme["name"]: key})
        assert r.status_code == 200
        r = httpx.get(server.url + "/v1/events", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
