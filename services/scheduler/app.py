"""Composition of the scheduler service: releases scheduled sends when they fall due."""

from __future__ import annotations

from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from services.component import Env, Service, register_service
from services.scheduler.handlers import Scheduler
from shared.subjects import SUPPRESSION_BUCKET


def register(broker: NatsBroker, env: Env) -> Service:
    async def build(js: JetStreamContext) -> Scheduler:
        return Scheduler(js, await js.key_value(SUPPRESSION_BUCKET))

    return register_service(broker, env, "scheduler", build)
