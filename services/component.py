"""What each service gives the runner: a subscriber registered on a shared broker
whose handler is built once NATS is connected, and closed at shutdown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from faststream.nats import NatsBroker, NatsMessage
from nats.js import JetStreamContext

from services.renderer.catalog import TemplateCatalog
from shared.consumers import subscribe
from shared.nats_setup import Definitions
from shared.settings import Settings


@dataclass(frozen=True)
class Env:
    """Everything built once in the composition root and handed to each service."""

    settings: Settings
    definitions: Definitions
    catalog: TemplateCatalog


class Handling(Protocol):
    async def handle(self, msg: NatsMessage) -> None: ...

    async def give_up(self, msg: NatsMessage, exc: BaseException) -> None:
        """Record a terminal failure for a message that keeps failing unexpectedly."""


@dataclass
class Service:
    durable: str
    build: Callable[[JetStreamContext], Awaitable[Handling]]
    closer: Callable[[], Awaitable[None]] | None = None
    handler: Handling | None = field(default=None, init=False)

    async def start(self, js: JetStreamContext) -> None:
        self.handler = await self.build(js)

    async def handle(self, msg: NatsMessage) -> None:
        assert self.handler is not None, f"{self.durable} got a message before it started"
        await self.handler.handle(msg)

    async def give_up(self, msg: NatsMessage, exc: BaseException) -> None:
        assert self.handler is not None, f"{self.durable} got a message before it started"
        await self.handler.give_up(msg, exc)

    async def close(self) -> None:
        if self.closer is not None:
            await self.closer()
        self.handler = None


def register_service(
    broker: NatsBroker,
    env: Env,
    durable: str,
    build: Callable[[JetStreamContext], Awaitable[Handling]],
    *,
    batch: int | None = None,
    closer: Callable[[], Awaitable[None]] | None = None,
) -> Service:
    service = Service(durable, build, closer)
    batch = batch or env.settings.fetch_batch
    subscribe(broker, env.definitions, durable, service.handle, batch=batch,
              give_up=service.give_up)  # fmt: skip
    return service
