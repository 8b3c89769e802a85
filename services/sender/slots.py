"""A pool's connection slots, where bulk mail yields to transactional mail.

A campaign released by the bulk lane fills the sender's window: with a plain
semaphore a password reset fetched behind it waits its turn behind every bulk mail in
hand. Here a free slot goes to the longest-waiting non-bulk mail first, and bulk mail
takes one only when no other mail waits: a transactional mail waits for at most one
SMTP transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator


class Slots:
    def __init__(self, size: int) -> None:
        self.free = size
        self._waiting: tuple[deque[asyncio.Future[None]], deque[asyncio.Future[None]]] = (
            deque(),  # other mail
            deque(),  # bulk
        )

    @contextlib.asynccontextmanager
    async def held(self, *, bulk: bool = False) -> AsyncIterator[None]:
        await self._acquire(bulk)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, bulk: bool) -> None:
        first, later = self._waiting
        if self.free > 0 and not first and not (bulk and later):
            self.free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = later if bulk else first
        queue.append(waiter)
        try:
            await waiter  # the slot was handed over by _release
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed over as we were cancelled: pass it on
            elif waiter in queue:  # else a release already passed over it (cancelled)
                queue.remove(waiter)
            raise

    def _release(self) -> None:
        for queue in self._waiting:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self.free += 1
