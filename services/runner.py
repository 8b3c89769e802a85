"""Runs one or more services in this process against a NATS server.

All services can share one process (`jetpost dev`) or each run alone
(`jetpost run sender`); several copies of a service bind the same durable pull
consumer and share its work.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Sequence

from faststream.nats import NatsBroker

from services.component import Env, Service
from services.intake.app import register as register_intake
from services.lanes.app import register as register_bulk_lane
from services.renderer.app import register as register_renderer
from services.renderer.catalog import TemplateCatalog
from services.scheduler.app import register as register_scheduler
from services.sender.app import register as register_sender
from services.suppression.app import register as register_suppression_set
from shared.logs import faststream_logger
from shared.nats_setup import apply_definitions, load_definitions
from shared.settings import Settings, redact_url
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


def make_broker(nats_url: str) -> NatsBroker:
    return NatsBroker(
        nats_url,
        max_reconnect_attempts=-1,  # a service waits for NATS to come back
        reconnect_time_wait=1,
        log_level=logging.DEBUG,  # per-message lines only when asked for
        graceful_timeout=10.0,
        logger=faststream_logger(),
    )


async def run_services(
    env: Env,
    names: Sequence[str],
    nats_url: str,
    stop: asyncio.Event,
    started: asyncio.Event | None = None,
) -> None:
    unknown = set(names) - set(REGISTRY)
    if unknown:
        raise ValueError(f"unknown service(s): {', '.join(sorted(unknown))}")
    broker = make_broker(nats_url)
    services = [REGISTRY[name](broker, env) for name in names]
    await broker.connect()
    try:
        js = broker.connection.jetstream()
        await apply_definitions(js, env.definitions)
        for service in services:
            await service.start(js)
        await broker.start()
        # Start-up objects (templates, settings, FastStream's graph) live for the whole
        # run: keep the cyclic GC from walking them again on every collection.
        gc.freeze()
        log.info("running %s on %s", ", ".join(names), redact_url(nats_url))
        if started is not None:
            started.set()
        if started is not None:
            started.set()
        await stop.wait()
    finally:
        await broker.stop()
        for service in services:
            await service.close()
