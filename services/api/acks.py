"""JetStream publishes whose acks come back through one inbox subscription, for the
API's `POST`s: what `js.publish` does, with less per call.

nats-py's `js.publish` goes through `nc.request`: a NUID and random bytes per token,
a future with a done callback, `asyncio.wait_for`, the ack parsed by the `json`
module into a `PubAck` dataclass: about a sixth of a `POST /v1/messages`. Here a token
is a counter, the wait a timer handle, the ack decoded by msgspec into the sequence
alone. The answers are the same: the stream sequence, or the errors nats-py raises
(no stream: `NoStreamResponseError`; an error ack: `APIError.from_error`; no ack in
time: `nats.errors.TimeoutError`), all `nats.errors.Error` (a 503 to the caller).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import Header
from nats.js.errors import APIError, NoStreamResponseError

NO_RESPONDERS = "503"  # the status of "no stream took the subject"


class _Ack(msgspec.Struct):
    seq: int = 0
    error: dict[str, Any] | None = None


_decode_ack = msgspec.json.Decoder(_Ack).decode


class Acks:
    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self._prefix = ""
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self._sub: Subscription | None = None

    async def start(self) -> None:
        inbox = self.nc.new_inbox()
        self._prefix = inbox + "."
        self._sub = await self.nc.subscribe(inbox + ".*", cb=self._on_ack)

    async def _on_ack(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject[len(self._prefix) :], None)
        if future is not None and not future.done():
            future.set_result(msg)

    async def publish(
        self, subject: str, data: bytes, headers: dict[str, str], timeout: float
    ) -> int:
        """Publish and wait for JetStream's ack; returns the stream sequence."""
        assert self._sub is not None, "Acks.start() first"
        loop = asyncio.get_running_loop()
        token = str(next(self._tokens))
        future: asyncio.Future[Msg] = loop.create_future()
        self._waiting[token] = future
        expire = loop.call_later(timeout, _expire, future)
        try:
            await self.nc.publish(subject, data, reply=self._prefix + token, headers=headers)
            msg = await future
        finally:
            expire.cancel()
            self._waiting.pop(token, None)
        if msg.headers and msg.headers.get(Header.STATUS) == NO_RESPONDERS:
            raise NoStreamResponseError
        try:
            ack = _decode_ack(msg.data)
        except msgspec.DecodeError as exc:
            raise APIError(description=f"unreadable ack: {exc}") from None
        if ack.error is not None:
            APIError.from_error(ack.error)  # raises the error's class
        return ack.seq


def _expire(future: asyncio.Future[Msg]) -> None:
    if not future.done():
        future.set_exception(nats.errors.TimeoutError())
