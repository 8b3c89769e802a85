"""Composition of the renderer service."""

from __future__ import annotations

from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from services.component import Env, Service, register_service
from services.renderer.handlers import Renderer
from services.renderer.tracking import Tracking
from shared.tokens import load_key_ring


def register(broker: NatsBroker, env: Env) -> Service:
    tracking = Tracking.from_settings(env.settings, load_key_ring(env.settings))

    async def build(js: JetStreamContext) -> Renderer:
        return Renderer(js, env.catalog, env.settings.mail_domain, tracking)

    return register_service(broker, env, "renderer", build)
