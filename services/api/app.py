"""Composition root of the HTTP API: `create_app(settings)` builds the Litestar app;
its lifespan opens the Postgres pool and the NATS connection and closes them.
`create_public_app(settings)` builds only the keyless endpoints that links in mail
point at (tracking, unsubscribe), over NATS alone, for `jetpost run public`.

Nothing is built at import time; everything a handler needs arrives as `rt`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx
import psycopg
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import PluginProtocol
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from services.api import (
    actions,
    attachments,
    console,
    health,
    messages,
    recipients,
    scheduling,
    sending,
    stats,
    suppressions,
    templates,
    tracking,
    unsubscribe,
    webhook_endpoints,
    webhooks,
)
from services.api.asyncapi import asyncapi_document
from services.api.bus import Bus
from services.api.key_changes import KeyChanges
from services.api.metrics import Metrics, MetricsMiddleware
from services.api.openapi import complete as complete_openapi
from services.api.pool_check import IdleCheck
from services.api.problems import (
    Problem,
    TooLarge,
    Unavailable,
    on_bad_value,
    on_http,
    on_internal,
    on_problem,
    on_too_large,
    on_unavailable,
    on_validation,
)
from services.api.public import Public
from services.api.ratelimit import MissCache, RateLimit
from services.api.runtime import KeyCache, Runtime
from services.api.templates_info import describe_catalog
from services.renderer.catalog import TemplateCatalog
from services.webhooks.docs import openapi_webhooks
from shared.nats_setup import load_definitions
from shared.settings import ConfigError, Settings
from shared.telemetry import tracing
from shared.tokens import KeyRing, load_key_ring

PUBLIC_ROUTES = [*tracking.ROUTES, *unsubscribe.ROUTES]
ROUTES = [
    *sending.ROUTES, *messages.ROUTES, *suppressions.ROUTES, *templates.ROUTES,
    *stats.ROUTES, *health.ROUTES, *actions.ROUTES, *PUBLIC_ROUTES, *webhooks.ROUTES,
    *scheduling.ROUTES, *attachments.ROUTES, *webhook_endpoints.ROUTES,
    *recipients.ROUTES, *console.ROUTES,
]  # fmt: skip


def _version() -> str:
    try:
        return version("jetpost")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


def _openapi(app_version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="jetpost",
        version=app_version,
        description="Send and query mail. Errors are application/problem+json (RFC 9457). "
        "Keys: `jetpost keys create --scope send,read`; send them as `Authorization: Bearer`.",
        path="/schema",
        render_plugins=[console.swagger_plugin()],  # /schema/swagger, offline; JSON: openapi.json
        webhooks=openapi_webhooks(),  # what jetpost POSTs to customers' webhook endpoints
        components=Components(
            security_schemes={
                "ApiKey": SecurityScheme(type="http", scheme="bearer", description="jp_..."),
            }
        ),
    )


def _plugins() -> list[PluginProtocol]:
    """A span per request when tracing is on (its context goes on with each command)."""
    if not tracing.enabled():
        return []
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    return [OpenTelemetryPlugin(OpenTelemetryConfig())]


def _exception_handlers() -> dict[Any, Any]:
    return {
        Problem: on_problem,
        ValidationException: on_validation,
        HTTPException: on_http,
        TooLarge: on_too_large,
        Unavailable: on_unavailable,
        PoolTimeout: on_unavailable,
        psycopg.OperationalError: on_unavailable,
        psycopg.DataError: on_bad_value,
        OverflowError: on_bad_value,
        Exception: on_internal,
    }


def create_app(
    settings: Settings,
    *,
    catalog: TemplateCatalog | None = None,
    webhook_http: httpx.AsyncClient | None = None,
) -> Litestar:
    """`webhook_http`: the client SNS certificates are fetched with (default: a new one)."""
    if not settings.database_url:
        raise ConfigError("JETPOST_DATABASE_URL: required for the API")
    database_url = settings.database_url
    definitions = load_definitions(settings)
    keys = load_key_ring(settings)
    catalog = catalog or TemplateCatalog.load(settings.template_dir, keys=keys)
    public = Public(settings, keys)
    app_version = _version()
    metrics = Metrics()
    rt = Runtime(
        settings=settings,
        catalog=catalog,
        templates=describe_catalog(catalog, settings.template_dir),
        metrics=metrics,
        asyncapi=asyncapi_document(settings, definitions, catalog, app_version),
        keys=KeyCache(settings.api_key_cache_ttl),
        preview_catalog=TemplateCatalog.load(
            settings.template_dir, keys=KeyRing([secrets.token_bytes(32)])
        ),
        misses=MissCache(settings.api_key_miss_ttl),
        auth_failures=RateLimit(settings.api_auth_fail_rate),
    )
    hooks = webhooks.Webhooks(settings, webhook_http)
    outbound = webhook_endpoints.Outbound(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            database_url, min_size=1, max_size=settings.api_pool_size, open=False,
            timeout=settings.api_timeout, kwargs={"autocommit": True},
            check=IdleCheck(), name="jetpost-api",
        )  # fmt: skip
        await pool.open(wait=False)  # Postgres may come later; /readyz tells
        listener = KeyChanges(database_url, rt.keys)
        changes = asyncio.create_task(listener.run()) if rt.keys.ttl > 0 else None
        try:
            rt.bus_ = await Bus.connect(settings, definitions, settings.api_timeout)
            rt.pool_ = pool
            public.bus_ = rt.bus_
            try:
                yield
            finally:
                public.bus_ = None
                await rt.bus_.close()
                rt.bus_ = None
        finally:
            rt.pool_ = None
            if changes is not None:
                changes.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await changes
            await pool.close()

    def provide_runtime() -> Runtime:
        return rt

    def provide_public() -> Public:
        return public

    app = Litestar(
        route_handlers=ROUTES,
        dependencies={
            "rt": Provide(provide_runtime, sync_to_thread=False),
            "pub": Provide(provide_public, sync_to_thread=False),
        },
        state=State({"runtime": rt, "webhooks": hooks, "webhook_endpoints": outbound}),
        lifespan=[lifespan, hooks.lifespan, outbound.lifespan],
        exception_handlers=_exception_handlers(),
        middleware=[MetricsMiddleware(metrics)],
        plugins=_plugins(),
        openapi_config=_openapi(app_version),
        template_config=console.TEMPLATES,
        logging_config=None,
        debug=False,
        request_max_body_size=settings.api_max_body,  # refused before it is read
    )
    complete_openapi(app.plugins.get(OpenAPIPlugin).provide_openapi())
    return app


def create_public_app(settings: Settings) -> Litestar:
    """Tracking and unsubscribe (and /healthz) only: no API key, no Postgres, no docs,
    so it can face the internet while the API stays inside."""
    definitions = load_definitions(settings)
    public = Public(settings, load_key_ring(settings))

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        bus = await Bus.connect(settings, definitions, settings.api_timeout)
        public.bus_ = bus
        try:
            yield
        finally:
            public.bus_ = None
            await bus.close()

    def provide_public() -> Public:
        return public

    return Litestar(
        route_handlers=[*PUBLIC_ROUTES, health.healthz],
        dependencies={"pub": Provide(provide_public, sync_to_thread=False)},
        lifespan=[lifespan],
        exception_handlers=_exception_handlers(),
        plugins=_plugins(),
        openapi_config=None,
        logging_config=None,
        debug=False,
        request_max_body_size=settings.api_max_body,
    )
