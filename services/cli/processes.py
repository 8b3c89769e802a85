"""What `jetpost run` and `jetpost dev` start: any of the pipeline services (one
FastStream broker), the projection runner and the feedback receiver (SMTP), side by
side until `stop` is set.
If one of them fails, the others are stopped and the error is raised.
Beside them the queue and projection gauges are polled, and with
JETPOST_METRICS_PORT set the process serves /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from projections.retention import run_retention
from projections.runner import run_projections
from services.api.server import serve_public
from services.bridge.bridge import BridgeConfig, run_bridge
from services.cli.pipeline_workers import layout, run_pipeline_workers
from services.feedback.receiver import run_feedback
from services.runner import SERVICES, build_env, run_services
from services.supervise import supervise
from services.webhooks.service import run_webhooks
from shared.nats_setup import load_definitions
from shared.settings import ConfigError, Settings
from shared.telemetry.pollers import run_pollers
from shared.telemetry.server import serve_metrics

RUNNABLE = (*SERVICES, "projections", "retention", "feedback", "pg-bridge", "public", "webhooks")


async def run_all(settings: Settings, names: Sequence[str], stop: asyncio.Event) -> None:
    if "pg-bridge" in names:
        BridgeConfig.from_settings(settings)  # a missing JETPOST_BRIDGE_DATABASE_URL stops here
    jobs: dict[str, Callable[[], Awaitable[None]]] = {}
    here, apart = layout([n for n in names if n in SERVICES], settings.pipeline_workers)
    if here:
        env = build_env(settings)
        jobs[", ".join(here)] = lambda: run_services(env, here, settings, stop)
    if apart:  # as many processes more, on the other cores
        jobs["pipeline workers"] = lambda: run_pipeline_workers(settings, apart, stop)
    if "projections" in names:
        if not settings.database_url:
            raise ConfigError("JETPOST_DATABASE_URL: required to run projections")
        database_url = settings.database_url
        jobs["projections"] = lambda: run_projections(
            database_url, settings, stop, rules=settings.suppression_rules
        )
    if "feedback" in names:
        jobs["feedback"] = lambda: run_feedback(settings, stop)
    if "pg-bridge" in names:
        jobs["pg-bridge"] = lambda: run_bridge(settings, stop)
    if "webhooks" in names:  # deliveries to the customer's endpoints
        jobs["webhooks"] = lambda: run_webhooks(settings, stop)
    if "public" in names:  # tracking and unsubscribe links alone, on JETPOST_PUBLIC_PORT
        jobs["public"] = lambda: serve_public(settings, stop)
    if "retention" in names:
        jobs["retention"] = lambda: run_retention(settings, stop)
    jobs.update(metrics_jobs(settings, names, stop))
    tasks = [asyncio.create_task(supervise(name, job, stop)) for name, job in jobs.items()]
    try:
        await asyncio.gather(*tasks)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def metrics_jobs(
    settings: Settings, names: Sequence[str], stop: asyncio.Event
) -> dict[str, Callable[[], Awaitable[None]]]:
    """The gauges only the servers know (queue depths; projection lag where the
    projections run), and /metrics on JETPOST_METRICS_PORT when set (the API's
    /metrics shows them too)."""
    database = settings.database_url if "projections" in names else None
    definitions = load_definitions(settings)
    jobs: dict[str, Callable[[], Awaitable[None]]] = {
        "metrics pollers": lambda: run_pollers(
            settings, definitions, database, settings.metrics_interval, stop
        ),
    }
    if settings.metrics_port is not None:
        port = settings.metrics_port
        jobs["metrics"] = lambda: serve_metrics(settings.metrics_host, port, stop)
    return jobs
