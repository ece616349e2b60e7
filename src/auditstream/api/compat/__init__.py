"""Compatibility profiles: each seed API, served exactly as documented, over the one engine.

A profile is a module here with:

* ``PREFIX``: its mount point (``/compat/<name>``);
* ``router() -> APIRouter``: its routes, relative to the prefix;
* ``render_error(request, exc: ProblemError) -> Response``: errors in its documented shape;
* optionally ``render_validation(request, exc: RequestValidationError) -> Response``;
* optionally ``configure(app, settings)``: read its own settings at start-up (raising
  ``ValueError`` on a bad one).

No profile has tables of its own: each maps its parameters onto the filter tree and
renders canonical events into its record shape. Each serves only the events of its scope
(``scope.py``), and each field whose reference lists its values reads through a
``value_map.ValueMap``.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from re import Pattern
from types import ModuleType
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.routing import compile_path
from starlette.types import Scope

from ...settings import Settings
from . import scope

PROFILES = ("turen", "turqoa", "platform_audit", "vaultterm", "authpi")
#: The ``profile`` label of requests that no compat profile served.
NATIVE = "native"

log = logging.getLogger("auditstream")


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{name}":
            return None
        raise


def profile_name(setting: str) -> str:
    return setting.strip().lower().replace("-", "_")


def label(mod: ModuleType) -> str:
    """A profile's public name, as in its prefix (``platform-audit``)."""
    return str(mod.PREFIX).rsplit("/", 1)[-1]


def mount(app: FastAPI, settings: Settings) -> None:
    """Mount every profile at its prefix, and ``settings.compat_root`` (if set) at ``/`` too.

    Call after the native routes. At the root a profile gets only the paths that no native
    route serves, so the native API and ``/openapi.json`` keep saying the same thing (with
    ``turqoa`` at the root, ``GET /api/v1/events`` is turqoa's and ``GET /v1/events`` stays
    native); the paths left to the native API are logged at start-up, and a root profile
    left with no path at all is refused with ``ValueError``. The profiles' scopes are
    checked here too (``scope.install``).
    """
    scope.install(app, settings)
    root_profile = settings.compat_root
    renderers = app.state.error_renderers
    app.state.route_labels = {}
    app.state.compat_prefixes = {}
    root = profile_name(root_profile) if root_profile else ""
    if root and root not in PROFILES:
        raise ValueError(f"AUDITSTREAM_COMPAT_ROOT={root_profile!r}: unknown profile; "
                         f"choose one of {', '.join(PROFILES)}")
    native = [_PathPattern.of(ctx.path_format, ctx.methods)
              for ctx in iter_route_contexts(app.router.routes) if ctx.path_format]
    for name in PROFILES:
        mod = _load(name)
        if mod is None:
            continue
        if hasattr(mod, "configure"):
            mod.configure(app, settings)
        if name == root:
            _mount_root(app, mod, native)
        router = mod.router()
        app.include_router(router, prefix=mod.PREFIX)
        _label_routes(app, router, mod.PREFIX, label(mod))
        renderers[mod.PREFIX] = _Renderer(mod)
        app.state.compat_prefixes[mod.PREFIX] = label(mod)


def _mount_root(app: FastAPI, mod: ModuleType, native: list[_PathPattern]) -> None:
    router: APIRouter = mod.router()
    kept, left = [], []
    for route in router.routes:
        # A WebSocket route has no methods: it collides with any route of its path.
        if isinstance(route, APIRoute | APIWebSocketRoute) and any(
                n.collides(_PathPattern.of(route.path_format, getattr(route, "methods", None)))
                for n in native):
            methods = getattr(route, "methods", None)
            left.append(f"{'/'.join(sorted(methods)) if methods else 'WebSocket'} "
                        f"{route.path}")
        else:
            kept.append(route)
    if not kept:
        raise ValueError(f"AUDITSTREAM_COMPAT_ROOT={label(mod)}: every path of the profile is "
                         f"a native one; use its prefix {mod.PREFIX} instead")
    if left:
        log.warning("AUDITSTREAM_COMPAT_ROOT=%s: %s stay native at the root; the profile "
                    "serves them under %s", label(mod), ", ".join(left), mod.PREFIX)
    router.routes[:] = kept
    app.include_router(router)
    _label_routes(app, router, "", label(mod))
    # Errors on the root-mounted routes take the profile's shape too; matched by endpoint,
    # not by path prefix, so native routes that share a prefix keep theirs.
    for route in kept:
        if isinstance(route, APIRoute):
            app.state.route_renderers[route.endpoint] = _Renderer(mod)


def _label_routes(app: FastAPI, router: APIRouter, prefix: str, name: str) -> None:
    """Remember each route's full path and profile for the request metrics."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            app.state.route_labels[id(route)] = (prefix + route.path, name)


def route_label(asgi_scope: Scope) -> tuple[str, str]:
    """``(route, profile)`` labels of a finished request: the matched route's full path
    template (``unmatched`` when none matched) and the profile that served it (``native``
    for the native API; a profile's prefix also claims the paths it does not have)."""
    state = getattr(asgi_scope.get("app"), "state", None)
    route = asgi_scope.get("route")
    if route is not None:
        labels: dict[int, tuple[str, str]] = getattr(state, "route_labels", {})
        return labels.get(id(route)) or (str(getattr(route, "path", "unmatched")), NATIVE)
    path = str(asgi_scope.get("path", ""))
    prefixes: dict[str, str] = getattr(state, "compat_prefixes", {})
    for prefix, name in prefixes.items():
        if path == prefix or path.startswith(prefix + "/"):
            return "unmatched", name
    return "unmatched", NATIVE


@dataclass(frozen=True)
class _PathPattern:
    """A route's path template, its regex and its methods, to find overlapping routes."""

    template: str
    regex: Pattern[str]
    methods: frozenset[str]

    @classmethod
    def of(cls, template: str, methods: Any) -> _PathPattern:
        return cls(template, compile_path(template)[0], frozenset(methods or ()))

    def sample(self) -> str:
        """A concrete path this template matches (each parameter as ``0``)."""
        return compile_path(self.template)[1].format_map(_Zero())

    def collides(self, other: _PathPattern) -> bool:
        """Some request (method and path) would match both routes."""
        if self.methods and other.methods and not self.methods & other.methods:
            return False
        return bool(self.regex.match(other.sample()) or other.regex.match(self.sample()))


class _Zero(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "0"


class _Renderer:
    """Adapter so ``api.problems`` can call a profile's renderers uniformly."""

    def __init__(self, mod: ModuleType):
        self.mod = mod
        self.handles_request_validation = hasattr(mod, "render_validation")

    def __call__(self, request, exc):  # type: ignore[no-untyped-def]
        return self.mod.render_error(request, exc)

    def validation(self, request, exc):  # type: ignore[no-untyped-def]
        return self.mod.render_validation(request, exc)
