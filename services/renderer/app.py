"""Composition of the renderer service."""

from __future__ import annotations

from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from services.component import Env, Service, register_service
from services.renderer.handlers import Renderer


def register(broker: NatsBroker, env: Env) -> Service:
    async def build(js: JetStreamContext) -> Renderer:
        return Renderer(js, env.catalog, env.settings.mail_domain)

    return register_service(broker, env, "renderer", build)
