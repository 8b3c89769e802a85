"""A window of messages in flight from a durable pull consumer, each handed to its
handler the moment it arrives.

FastStream's pull loop fetches a batch, works it, and fetches again only once every
message of the batch is done; and nats-py's fetch, when nothing was waiting, holds
the first message that comes until the batch fills or the fetch times out. So the
next message (a password reset behind a campaign) waited for the slowest message of
the batch in hand and then for the fetch timeout, at every stage.

Here pull requests stay outstanding for the free room of the window, as nats.go's
`Consume` keeps them: a message is handed over as it arrives, and room freed by a
finished message is asked for again (in steps of a quarter window, so a busy consumer
sends one request per several messages, not one per message). Each request gets its
own reply subject, so the server's end-of-request status (408 expired, 409) says which
request ended and how much of it was left. Requests the server forgot (a reconnect, a
restart) are given up locally shortly after the last one's expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from shared.raw_inbox import parse_headers, subscribe_raw, unsubscribe_raw

log = logging.getLogger("jetpost.pull")
Handle = Callable[[Msg], Coroutine[Any, Any, Any]]

EXPIRES = 5.0  # seconds a pull request waits on the server for messages
GRACE = 2.0  # after which a request without its end-of-request status is given up
PAUSE = 0.5  # after a refusal (409, 503...): the consumer may be gone or moving


@dataclass
class PullWindow:
    nc: Client
    stream: str
    durable: str
    window: int
    expires: float = EXPIRES
    in_flight: int = field(default=0, init=False)
    asked: int = field(default=0, init=False)  # messages the server may still send us
    batches: dict[str, int] = field(default_factory=dict, init=False)  # reply -> batch
    asked_until: float = field(default=0.0, init=False)  # every request ended by then
    tasks: set[asyncio.Task[Any]] = field(default_factory=set, init=False)
    wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    paused_until: float = field(default=0.0, init=False)

    def room(self, now: float) -> int:
        """How many messages to ask for now (0: not yet)."""
        if now < self.paused_until:
            return 0
        room = self.window - self.in_flight - self.asked
        step = max(1, self.window // 4)
        return room if room >= step or (room > 0 and not self.asked) else 0

    async def run(self, handle: Handle, running: Callable[[], bool]) -> None:
        """Until cancelled or `running()` turns false; handlers still at work are left
        to finish (the caller waits for them) and cancelled only with this task."""
        inbox = self.nc.new_inbox()
        nc = self.nc

        def arrived(subject: bytes, reply: bytes, data: bytes, block: bytes | None) -> None:
            # the Msg nats-py would build, without its queue and task hop per delivery
            msg = nc.msg_class(subject=subject.decode(), reply=reply.decode(), data=data,
                               headers=parse_headers(block), _client=nc)  # fmt: skip
            self._arrived(msg, handle)

        sub = await subscribe_raw(nc, f"{inbox}.*", arrived)
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.durable}"
        serial = 0
        try:
            while running():
                now = time.monotonic()
                if now >= self.asked_until:  # whatever is still asked for was lost
                    self.asked, self.batches = 0, {}
                if (want := self.room(now)) > 0:
                    serial += 1
                    reply = f"{inbox}.{serial}"
                    body = {"batch": want, "expires": int(self.expires * 1e9)}
                    try:
                        await self.nc.publish(subject, json.dumps(body).encode(), reply=reply)
                    except nats.errors.Error as exc:  # not connected: try again shortly
                        log.debug("%s: pull request not sent: %r", self.durable, exc)
                        self.paused_until = now + PAUSE
                        continue
                    self.asked += want
                    self.batches[reply] = want
                    self.asked_until = now + self.expires + GRACE
                    continue
                self.wake.clear()
                paused = self.paused_until - now
                wait = paused if paused > 0 else self.expires  # or until `wake`
                # not asyncio.wait_for: on Python 3.11 it swallows a cancellation that
                # comes as `wake` is set, and the loop went on after being cancelled
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self.wake.wait()
        finally:
            for task in self.tasks:
                task.cancel()
            with contextlib.suppress(nats.errors.Error):
                await unsubscribe_raw(nc, sub)

    def _arrived(self, msg: Msg, handle: Handle) -> None:
        """A message, or the status that ends one of our requests (on its own reply
        subject; messages come with their own subjects, so only the count tells)."""
        headers = msg.headers or {}
        status = headers.get("Status") if not msg.reply else None
        if status is not None:
            if status == "100":  # idle heartbeat
                return
            batch = self.batches.pop(msg.subject, 0)
            # what the request still had: the server says so when it expires (408)
            left = int(headers.get("Nats-Pending-Messages", batch if status != "408" else 0))
            self.asked = max(0, self.asked - left)
            if status != "408":  # 409 and the like: do not ask again at once
                log.debug("%s: pull request ended: %s %s", self.durable, status,
                          headers.get("Description", ""))  # fmt: skip
                self.paused_until = time.monotonic() + PAUSE
            self.wake.set()
            return
        self.asked = max(0, self.asked - 1)
        self.in_flight += 1
        task = asyncio.create_task(handle(msg))
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        self.in_flight -= 1
        now = time.monotonic()
        if now >= self.asked_until or self.room(now) > 0:  # else the loop only waits again
            self.wake.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s: message handling raised", self.durable, exc_info=exc)
