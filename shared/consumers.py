"""Binding a handler to a durable pull consumer declared in nats/jetstream.yaml.

Every jetpost subscriber goes through here, so every one of them has the same,
deliberate ack policy: MANUAL. Handlers ack only after their result is appended,
nak with a delay on transient errors, and never let FastStream's default
(terminate the message when a handler raises) decide for them.

And every one heartbeats: while a handler works on a message, an in-progress ack
(+WPI) every quarter ack wait keeps it from being redelivered. So ack waits are
short (nats/jetstream.yaml: 10 s), and a message whose worker died, or whose ack
was lost in a NATS leader election, comes back within seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import nats.errors
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub

from shared.handover import lean
from shared.nats_setup import Definitions
from shared.pull import PullWindow

Handler = Callable[[NatsMessage], Awaitable[None]]
# Records a terminal failure for a message that keeps failing (e.g. `failed`).
GiveUp = Callable[[NatsMessage, BaseException], Awaitable[None]]

log = logging.getLogger("jetpost.consumers")
GIVE_UP_AFTER = 5  # deliveries of a message whose handler raised something unexpected

# Errors worth a retry: the server or the connection, not the input.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (nats.errors.Error, TimeoutError, OSError)


MAX_WORK = 600.0  # seconds a handler may hold a message before heartbeats stop


class Heartbeat:
    """In-progress acks for the messages a subscriber is working on, from one task
    that runs only while something is held."""

    def __init__(self, durable: str, interval: float, max_work: float = MAX_WORK) -> None:
        self.durable, self.interval, self.max_work = durable, interval, max_work
        self.held: dict[int, tuple[Any, float]] = {}  # id(raw message) -> (message, since)
        self._task: asyncio.Task[None] | None = None

    def hold(self, raw: Any) -> None:
        """Kept from redelivery until `release` (a plain pair, not a context manager:
        this runs for every delivery)."""
        self.held[id(raw)] = (raw, time.monotonic())
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._beat(), name=f"{self.durable}-heartbeat")

    def release(self, raw: Any) -> None:
        self.held.pop(id(raw), None)

    async def _beat(self) -> None:
        while self.held:
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            for key, (raw, since) in list(self.held.items()):
                if now - since > self.max_work:
                    log.warning("%s: %s worked on for %.0fs; no longer kept from redelivery",
                                self.durable, raw.subject, now - since)  # fmt: skip
                    self.held.pop(key, None)
                    continue
                with contextlib.suppress(*TRANSIENT_ERRORS):
                    await raw.in_progress()


def heartbeat_interval(ack_wait: float | None) -> float:
    """A quarter of the ack wait: three beats may be lost before a redelivery."""
    return max(0.05, (ack_wait or 30.0) / 4)


def retry_delay(num_delivered: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Back-off for transient failures of our own (NATS or Postgres hiccups)."""
    return float(min(base * 2.0 ** max(num_delivered - 1, 0), cap))


async def as_message(msg: Any) -> Any:
    """Handlers parse the bytes themselves: FastStream's own decoding (by the
    content-type header) would raise on a malformed body before a handler could
    record it as `rejected`. The "decoded" value is the message itself, handed to the
    handler as its one argument: the services' broker does not apply FastStream's
    dependency injection (services/runner.py), which resolved the message parameter in
    a worker thread, one thread hop per message. A coroutine function for the same
    reason: FastStream runs a plain function decoder in a worker thread too."""
    return msg


async def on_failure(
    msg: NatsMessage, exc: BaseException, durable: str, give_up: GiveUp | None
) -> None:
    """A handler raised what it did not expect (a bug, a permanent server refusal).
    Under MANUAL acks FastStream would leave the message to come back forever: retry
    it a few times with a back-off, then record its failure and let it go."""
    delivered = msg.raw_message.metadata.num_delivered
    if give_up is not None and delivered >= GIVE_UP_AFTER:
        log.error("%s: giving up on %s after %d tries", durable, msg.raw_message.subject,
                  delivered, exc_info=exc)  # fmt: skip
        try:
            await give_up(msg, exc)
        except Exception:
            log.exception("%s: could not record the failure; will retry", durable)
            await msg.nack(delay=retry_delay(delivered, cap=300.0))
            return
        await msg.ack()
        return
    log.error("%s: unexpected error on %s (try %d)", durable, msg.raw_message.subject,
              delivered, exc_info=exc)  # fmt: skip
    await msg.nack(delay=retry_delay(delivered, base=2.0, cap=300.0))


def _wildcard(filters: list[str]) -> str:
    return ".".join(filters[0].split(".")[:2]) + ".>"


def subscribe(
    broker: NatsBroker,
    definitions: Definitions,
    durable: str,
    handler: Handler,
    *,
    batch: int,
    give_up: GiveUp | None = None,
) -> None:
    stream, config = definitions.consumer(durable)
    heartbeat = Heartbeat(durable, heartbeat_interval(config.ack_wait))

    async def on_message(msg: NatsMessage) -> None:
        raw = msg.raw_message
        heartbeat.hold(raw)
        try:
            await handler(msg)
        except Exception as exc:  # deliberately broad: see on_failure
            await on_failure(msg, exc, durable, give_up)
        finally:
            heartbeat.release(raw)

    on_message.__name__ = f"{durable}_handler"
    subscriber = broker.subscriber(
        # filter_subjects: the consumer's own list; named by its stream's wildcard
        config.filter_subject or _wildcard(config.filter_subjects or ["mail.evt.>"]),
        stream=JStream(stream, declare=False),
        durable=durable,
        config=config,
        pull_sub=PullSub(batch_size=batch, timeout=1.0),
        ack_policy=AckPolicy.MANUAL,
        decoder=as_message,
        description=config.description,
    )
    subscriber(on_message)
    windowed(subscriber, broker, stream, durable, batch, on_message)


def windowed(
    subscriber: Any,
    broker: NatsBroker,
    stream: str,
    durable: str,
    window: int,
    handler: Callable[[NatsMessage], Coroutine[Any, Any, None]] | None = None,
) -> None:
    """FastStream's fetch-a-batch-then-work-it loop replaced by a window of `window`
    messages in flight, each handed over as it arrives (shared/pull.py). With
    `handler`, each goes to it by the lean path of shared/handover.py when the broker's
    middlewares allow it; otherwise FastStream parses, runs the middlewares and the
    handler. Either way FastStream waits for handlers at work on shutdown."""
    if not callable(getattr(subscriber, "_consume_pull", None)):  # pragma: no cover
        raise RuntimeError("FastStream's pull subscriber changed: shared/pull.py needs a look")

    async def consume_pull(cb: Callable[[Any], Coroutine[Any, Any, Any]]) -> None:
        pull = PullWindow(broker.connection, stream, durable, window)
        deliver = lean(subscriber, broker.middlewares, handler) if handler else None
        await pull.run(deliver or cb, lambda: bool(subscriber.running))

    subscriber._consume_pull = consume_pull
