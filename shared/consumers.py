"""Binding a handler to a durable pull consumer declared in nats/jetstream.yaml.

Every jetpost subscriber goes through here, so every one of them has the same,
deliberate ack policy: MANUAL. Handlers ack only after their result is appended,
nak with a delay on transient errors, and never let FastStream's default
(terminate the message when a handler raises) decide for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import nats.errors
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub

from shared.nats_setup import Definitions

Handler = Callable[[NatsMessage], Awaitable[None]]

# Errors worth a retry: the server or the connection, not the input.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (nats.errors.Error, TimeoutError, OSError)


def retry_delay(num_delivered: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Back-off for transient failures of our own (NATS or Postgres hiccups)."""
    return float(min(base * 2.0 ** max(num_delivered - 1, 0), cap))


def subscribe(
    broker: NatsBroker,
    definitions: Definitions,
    durable: str,
    handler: Handler,
    *,
    batch: int,
) -> None:
    stream, config = definitions.consumer(durable)

    async def on_message(msg: NatsMessage) -> None:
        await handler(msg)

    on_message.__name__ = f"{durable}_handler"
    broker.subscriber(
        config.filter_subject or "mail.evt.>",  # filter_subjects: the consumer's own list
        stream=JStream(stream, declare=False),
        durable=durable,
        config=config,
        pull_sub=PullSub(batch_size=batch, timeout=1.0),
        ack_policy=AckPolicy.MANUAL,
        description=config.description,
    )(on_message)
