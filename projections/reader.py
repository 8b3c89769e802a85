"""Reading MAIL_EVT in stream order from a sequence, in batches.

An ordered push consumer (ephemeral, flow-controlled, recreated by nats-py after a
gap or a reconnect) feeds a buffer; `batches()` hands out what has arrived, up to
`max_batch` events, so a busy stream is written in large transactions and a quiet
one with little delay. When the buffer is full the callback waits, which holds the
subscription back instead of growing memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from projections.base import Stored
from shared.events import parse_event
from shared.subjects import EVT_PREFIX, EVT_STREAM


class UnreadableEvent(Exception):
    """An event this version cannot parse; a projection must not skip it silently."""


class EventReader:
    def __init__(self, js: JetStreamContext, start_seq: int, max_batch: int = 2000) -> None:
        self.js = js
        self.start_seq = max(start_seq, 1)
        self.max_batch = max_batch
        self._buffer: list[Stored] = []
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._error: Exception | None = None
        self._sub: Subscription | None = None

    async def _on_msg(self, msg: Msg) -> None:
        if len(self._buffer) >= self.max_batch * 4:
            self._room.clear()
            await self._room.wait()
        try:
            stored = Stored(msg.metadata.sequence.stream, msg.data, parse_event(msg.data))
        except (ValidationError, ValueError) as exc:
            self._error = UnreadableEvent(f"{msg.subject}: {exc}")
            self._ready.set()
            return
        self._buffer.append(stored)
        self._ready.set()

    async def start(self) -> None:
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.start_seq
        )
        self._sub = await self.js.subscribe(
            f"{EVT_PREFIX}.>",
            stream=EVT_STREAM,
            ordered_consumer=True,
            config=config,
            cb=self._on_msg,
            pending_msgs_limit=self.max_batch * 8,
        )

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def next_batch(self, timeout: float | None = None) -> list[Stored]:
        """What has arrived (at most max_batch), waiting up to `timeout` for anything."""
        if not self._buffer and self._error is None:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return []
        if self._error is not None:
            raise self._error
        batch, self._buffer = self._buffer[: self.max_batch], self._buffer[self.max_batch :]
        self._room.set()
        return batch

    async def batches(self, idle: float = 1.0) -> AsyncIterator[list[Stored]]:
        while True:
            yield await self.next_batch(idle)
