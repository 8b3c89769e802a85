"""The web console at /console (Jinja pages + htmx), and the assets it and the API
docs serve from the package: nothing is loaded from a CDN (static/VENDORED.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, Response, Router
from litestar.di import Provide
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig
from litestar.types import ControllerRouterHandler

from services.api.console import live, pages, signin, webhooks
from services.api.console.pages import Forbidden
from services.api.console.session import (
    BadCsrf,
    ConsoleSession,
    Rt,
    SignedOut,
    load_session,
    provide_form,
)
from services.api.problems import Problem

HERE = Path(__file__).parent
STATIC = "/console/static"
# The console's own pages: same-origin scripts and styles only, frames from itself.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)

TEMPLATES = TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine)


async def provide_session(rt: Rt, request: Request[Any, Any, Any]) -> ConsoleSession:
    return await load_session(rt, request)


def _signed_out(request: Request[Any, Any, Any], _: SignedOut) -> Response[Any]:
    if request.headers.get("hx-request"):  # htmx swaps would nest the form: reload instead
        return Response("", status_code=401, headers={"HX-Redirect": "/console/login"})
    return Redirect("/console/login")


def _error(status: int, detail: str) -> Template:
    return Template(
        media_type="text/html",
        template_name="error.html",
        context={"status": status, "detail": detail},
        status_code=status,
    )


def _on_problem(_: Request[Any, Any, Any], exc: Problem) -> Template:
    return _error(exc.status_code, exc.detail)


def _on_forbidden(_: Request[Any, Any, Any], exc: Forbidden) -> Template:
    return _error(403, str(exc))


def _on_csrf(_: Request[Any, Any, Any], __: BadCsrf) -> Template:
    return _error(403, "the form has expired or did not come from this console; reload the page")


async def _headers(response: Response[Any]) -> Response[Any]:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def console_router() -> Router:
    return Router(
        path="/console",
        route_handlers=[*pages.ROUTES, *signin.ROUTES, *live.ROUTES, *webhooks.ROUTES],
        dependencies={"session": Provide(provide_session), "form": Provide(provide_form)},
        exception_handlers={
            SignedOut: _signed_out,
            Problem: _on_problem,
            Forbidden: _on_forbidden,
            BadCsrf: _on_csrf,
        },
        after_request=_headers,
        include_in_schema=False,
    )


def static_router() -> Router:
    return create_static_files_router(
        path=STATIC,
        directories=[HERE / "static"],
        include_in_schema=False,
        send_as_attachment=False,
    )


def swagger_plugin() -> SwaggerRenderPlugin:
    """Swagger UI from the package's copy of swagger-ui-dist (works offline)."""
    base = f"{STATIC}/swagger-ui"
    return SwaggerRenderPlugin(
        js_url=f"{base}/swagger-ui-bundle.js",
        css_url=f"{base}/swagger-ui.css",
        standalone_preset_js_url=f"{base}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{base}/favicon-32x32.png'>",
    )


ROUTES: list[ControllerRouterHandler] = [console_router(), static_router()]
