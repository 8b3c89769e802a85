"""Lanes: transactional mail never waits behind bulk.

JetStream consumers hand out events in stream order, so a campaign fanned out at
once would put 20,000 `accepted` events in front of the next password reset at the
renderer and again at the sender. Bulk mail (the entries of `mail.cmd.send_batch`
that are not `transactional`) is therefore recorded as `queued`, and the bulk lane
(services/lanes) appends their `accepted` only while the renderer's and sender's
consumers have little waiting (`JETPOST_LANE_DEPTH`). The backlog waits in the lane;
what the renderer and sender hold at any time is short, and a transactional
`accepted` is appended straight into it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.js import JetStreamContext

from shared.subjects import CMD_SEND_BATCH, EVT_STREAM

DOWNSTREAM = ("renderer", "sender")  # the consumers whose queue a bulk message joins


def is_bulk(command_subject: str, transactional: bool) -> bool:
    return command_subject == CMD_SEND_BATCH and not transactional


@dataclass
class Gate:
    """Opens while the downstream consumers have fewer than `depth` events waiting.
    One look at their consumer info serves every waiter for `every` seconds."""

    js: JetStreamContext
    depth: int
    every: float = 0.05
    waiting: int = field(default=0, init=False)
    seen_at: float = field(default=0.0, init=False)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def backlog(self) -> int:
        async with self.lock:
            if time.monotonic() - self.seen_at >= self.every:
                infos = await asyncio.gather(
                    *(self.js.consumer_info(EVT_STREAM, name) for name in DOWNSTREAM)
                )
                renderer, sender = infos
                # The renderer's work in hand counts too (it takes a batch at a time);
                # the sender's does not: deferred mail waiting out a retry is in hand.
                self.waiting = (int(renderer.num_pending or 0) + int(renderer.num_ack_pending or 0)
                                + int(sender.num_pending or 0))  # fmt: skip
                self.seen_at = time.monotonic()
            return self.waiting

    async def wait(
        self, on_wait: Callable[[], Awaitable[None]] | None = None, keep_alive: float = 10.0
    ) -> None:
        """Until there is room; `on_wait` runs every `keep_alive` seconds meanwhile."""
        started = time.monotonic()
        while await self.backlog() >= self.depth:
            if on_wait is not None and time.monotonic() - started >= keep_alive:
                await on_wait()
                started = time.monotonic()
            await asyncio.sleep(self.every)
        self.waiting += 1  # this one is on its way: the next look counts it
