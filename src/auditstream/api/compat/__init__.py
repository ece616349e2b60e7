"""Compatibility profiles: each seed API, served exactly as documented, over the one engine.

A profile is a module here with:

* ``PREFIX``: its mount point (``/compat/<name>``);
* ``router() -> APIRouter``: its routes, relative to the prefix;
* ``render_error(request, exc: ProblemError) -> Response``: errors in its documented shape;
* optionally ``render_validation(request, exc: RequestValidationError) -> Response``.

No profile has tables of its own: each maps its parameters onto the filter tree and
renders canonical events into its record shape.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from fastapi import FastAPI
from fastapi.routing import APIRoute

PROFILES = ("turen", "turqoa", "platform_audit", "vaultterm", "authpi")


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{name}":
            return None
        raise


def profile_name(setting: str) -> str:
    return setting.strip().lower().replace("-", "_")


def mount(app: FastAPI, root_profile: str = "") -> None:
    """Mount every profile at its prefix, and ``root_profile`` (if set) at ``/`` too.

    Call before the native routers: at the root a profile's documented paths (turqoa's
    ``/v1/events``) must win over the native ones.
    """
    renderers = app.state.error_renderers
    root = profile_name(root_profile) if root_profile else ""
    if root and root not in PROFILES:
        raise ValueError(f"AUDITSTREAM_COMPAT_ROOT={root_profile!r}: unknown profile; "
                         f"choose one of {', '.join(PROFILES)}")
    for name in PROFILES:
        mod = _load(name)
        if mod is None:
            continue
        if name == root:
            router = mod.router()
            app.include_router(router)
            # Errors on the root-mounted routes take the profile's shape too; matched by
            # endpoint, not by path prefix, so native routes that share a prefix keep theirs.
            for route in router.routes:
                if isinstance(route, APIRoute):
                    app.state.route_renderers[route.endpoint] = _Renderer(mod)
        app.include_router(mod.router(), prefix=mod.PREFIX)
        renderers[mod.PREFIX] = _Renderer(mod)


class _Renderer:
    """Adapter so ``api.problems`` can call a profile's renderers uniformly."""

    def __init__(self, mod: ModuleType):
        self.mod = mod
        self.handles_request_validation = hasattr(mod, "render_validation")

    def __call__(self, request, exc):  # type: ignore[no-untyped-def]
        return self.mod.render_error(request, exc)

    def validation(self, request, exc):  # type: ignore[no-untyped-def]
        return self.mod.render_validation(request, exc)
