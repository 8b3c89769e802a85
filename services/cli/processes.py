"""What `jetpost run` and `jetpost dev` start: any of the pipeline services (one
FastStream broker), the projection runner and the feedback receiver (SMTP), side by
side until `stop` is set.
If one of them fails, the others are stopped and the error is raised."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from projections.runner import run_projections
from services.api.server import serve_public
from services.bridge.bridge import BridgeConfig, run_bridge
from services.feedback.receiver import run_feedback
from services.runner import SERVICES, build_env, run_services
from services.webhooks.service import run_webhooks
from shared.settings import ConfigError, Settings

RUNNABLE = (*SERVICES, "projections", "feedback", "pg-bridge", "public", "webhooks")


async def run_all(settings: Settings, names: Sequence[str], stop: asyncio.Event) -> None:
    if "pg-bridge" in names:
        BridgeConfig.from_settings(settings)  # a missing JETPOST_BRIDGE_DATABASE_URL stops here
    jobs = []
    pipeline = [n for n in names if n in SERVICES]
    if pipeline:
        jobs.append(run_services(build_env(settings), pipeline, settings, stop))
    if "projections" in names:
        if not settings.database_url:
            raise ConfigError("JETPOST_DATABASE_URL: required to run projections")
        jobs.append(
            run_projections(
                settings.database_url, settings, stop,
                rules=settings.suppression_rules,
            )
        )  # fmt: skip
    if "feedback" in names:
        jobs.append(run_feedback(settings, stop))
    if "pg-bridge" in names:
        jobs.append(run_bridge(settings, stop))
    if "webhooks" in names:  # deliveries to the customer's endpoints
        jobs.append(run_webhooks(settings, stop))
    if "public" in names:  # tracking and unsubscribe links alone, on JETPOST_PUBLIC_PORT
        jobs.append(serve_public(settings, stop))
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        await asyncio.gather(*tasks)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
