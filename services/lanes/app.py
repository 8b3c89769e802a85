"""Composition of the bulk lane: releases queued bulk mail as the pipeline has room."""

from __future__ import annotations

from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from services.component import Env, Service, register_service
from services.lanes.handlers import BulkLane
from shared.lanes import Gate
from shared.subjects import SUPPRESSION_BUCKET


def register(broker: NatsBroker, env: Env) -> Service:
    async def build(js: JetStreamContext) -> BulkLane:
        suppressions = await js.key_value(SUPPRESSION_BUCKET)
        return BulkLane(js, Gate(js, env.settings.lane_depth), suppressions)

    return register_service(broker, env, "bulk_lane", build, batch=32)
