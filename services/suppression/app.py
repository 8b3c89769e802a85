"""Composition of the suppression_set service."""

from __future__ import annotations

from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from services.component import Env, Service, register_service
from services.suppression.handlers import SuppressionSet
from shared.subjects import SOFT_BOUNCE_BUCKET, SUPPRESSION_BUCKET


def register(broker: NatsBroker, env: Env) -> Service:
    async def build(js: JetStreamContext) -> SuppressionSet:
        return SuppressionSet(
            entries=await js.key_value(SUPPRESSION_BUCKET),
            soft_bounces=await js.key_value(SOFT_BOUNCE_BUCKET),
            rules=env.settings.suppression_rules,
        )

    return register_service(broker, env, "suppression_set", build)
