"""Runs one or more services in this process against a NATS server.

All services can share one process (`jetpost dev`) or each run alone
(`jetpost run sender`); several copies of a service bind the same durable pull
consumer and share its work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from faststream.nats import NatsBroker
from faststream.nats.opentelemetry import NatsTelemetryMiddleware

from services.component import Env, Service
from services.intake.app import register as register_intake
from services.lanes.app import register as register_bulk_lane
from services.renderer.app import register as register_renderer
from services.renderer.catalog import TemplateCatalog
from services.scheduler.app import register as register_scheduler
from services.sender.app import register as register_sender
from services.suppression.app import register as register_suppression_set
from shared import inflight
from shared.collector import freeze_start_up
from shared.logs import faststream_logger
from shared.nats_connect import NatsTarget, bounded, broker_options
from shared.nats_setup import apply_definitions, load_definitions
from shared.settings import Settings, redact_url
from shared.telemetry import tracing
from shared.telemetry.destinations import prometheus_middleware
from shared.telemetry.metrics import DeliveryScopeMiddleware, registry
from shared.tokens import load_key_ring

REGISTRY: dict[str, Callable[[NatsBroker, Env], Service]] = {
    "intake": register_intake,
    "renderer": register_renderer,
    "sender": register_sender,
    "suppression_set": register_suppression_set,
    "scheduler": register_scheduler,
    "bulk_lane": register_bulk_lane,
}
SERVICES = tuple(REGISTRY)

log = logging.getLogger("jetpost")


def build_env(settings: Settings) -> Env:
    """Everything that can fail on bad configuration, checked before connecting."""
    return Env(
        settings=settings,
        definitions=load_definitions(settings),
        catalog=TemplateCatalog.load(settings.template_dir, keys=load_key_ring(settings)),
    )


def make_broker(nats: NatsTarget, errors: list[BaseException] | None = None) -> NatsBroker:
    """The services' broker: servers, auth and TLS as every jetpost client has them
    (shared/nats_connect.py); `errors` collects connection errors for the report."""
    seen = errors if errors is not None else []

    async def on_error(exc: Exception) -> None:
        seen.append(exc)
        del seen[:-5]

    return NatsBroker(
        **broker_options(nats),  # a service waits for NATS to come back
        error_cb=on_error,
        log_level=logging.DEBUG,  # per-message lines only when asked for
        graceful_timeout=10.0,
        apply_types=False,  # handlers take the message itself (shared/consumers.py)
        logger=faststream_logger(),
        # traces continue from each message's `traceparent` (when tracing is on);
        # per-message metrics always
        middlewares=(
            *((NatsTelemetryMiddleware(),) if tracing.enabled() else ()),
            prometheus_middleware(registry(), "jetpost"),  # by subject pattern
            DeliveryScopeMiddleware,
        ),
    )


async def run_services(
    env: Env,
    names: Sequence[str],
    nats_url: NatsTarget,
    stop: asyncio.Event,
    started: asyncio.Event | None = None,
) -> None:
    unknown = set(names) - set(REGISTRY)
    if unknown:
        raise ValueError(f"unknown service(s): {', '.join(sorted(unknown))}")
    errors: list[BaseException] = []
    broker = make_broker(nats_url, errors)
    services = [REGISTRY[name](broker, env) for name in names]
    await bounded(nats_url, broker.connect(), errors)
    try:
        js = broker.connection.jetstream()
        inflight.enable(js)  # appends and lookups of the hot path (shared/inflight.py)
        await apply_definitions(js, env.definitions)
        for service in services:
            await service.start(js)
        await broker.start()
        # Start-up objects (templates, settings, FastStream's graph) live for the whole
        # run: the cyclic GC walks them no more, and young collections come rarer
        # (shared/collector.py). No full collection first: tests start many pipelines.
        freeze_start_up(collect=False)
        where = nats_url if isinstance(nats_url, str) else nats_url.nats_address
        log.info("running %s on %s", ", ".join(names), redact_url(where))
        if started is not None:
            started.set()
        await stop.wait()
    finally:
        await broker.stop()
        for service in services:
            await service.close()
