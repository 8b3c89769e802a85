"""Requests to JetStream (publish acks, direct gets) with many in flight and little
bookkeeping per request.

nats-py's `request` (under `js.publish` and every direct get) makes, per call, a
random token (a NUID plus `os.urandom`), a future with a done-callback, and an
`asyncio.wait_for` (a timer and a second future), then parses the PubAck into a
dataclass. Every append and every lookup of the pipeline went through it: the largest
single item of the e2e profile. Here one long-lived reply subscription per connection
takes the answers of every request, keyed by a counter token; one sweeper task fails
the requests whose deadline passed (none when nothing is pending). The caller still
awaits its own answer: nothing about durability changes, only the cost of waiting.

The answers mean what nats-py makes of them: the same exceptions (`nats.errors.
TimeoutError`, `NoRespondersError`, `nats.js.errors.APIError` and its subclasses), so
callers' error handling is the one they had.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

SWEEP = 0.25  # seconds between looks for expired requests
NO_RESPONDERS = "503"


class Requests:
    """Requests on one connection, answered on one wildcard reply subscription."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.prefix = ""
        self.pending: dict[str, tuple[asyncio.Future[Msg], float]] = {}
        self._serial = 0
        self._starting = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        async with self._starting:
            if self.prefix:  # another request started it meanwhile
                return
            prefix = f"{self.nc.new_inbox()}."
            await self.nc.subscribe(f"{prefix}*", cb=self._answered)
            self.prefix = prefix

    async def _answered(self, msg: Msg) -> None:
        entry = self.pending.pop(msg.subject[len(self.prefix) :], None)
        if entry is not None and not entry[0].done():
            entry[0].set_result(msg)

    async def request(
        self, subject: str, payload: bytes, timeout: float, headers: dict[str, str] | None = None
    ) -> Msg:
        if not self.prefix:
            await self._start()
        self._serial += 1
        token = format(self._serial, "x")
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self.pending[token] = (future, time.monotonic() + timeout)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="jetpost-requests-sweeper")
        try:
            await self.nc.publish(subject, payload, reply=self.prefix + token, headers=headers)
            msg = await future
        finally:
            self.pending.pop(token, None)
        if not msg.data and msg.headers and msg.headers.get("Status") == NO_RESPONDERS:
            raise nats.errors.NoRespondersError
        return msg

    async def _sweep(self) -> None:
        while self.pending:
            await asyncio.sleep(SWEEP)
            now = time.monotonic()
            for token, (future, deadline) in list(self.pending.items()):
                if now >= deadline:
                    del self.pending[token]
                    if not future.done():
                        future.set_exception(nats.errors.TimeoutError())


_requests: weakref.WeakKeyDictionary[Client, Requests] = weakref.WeakKeyDictionary()


def requests_of(js: JetStreamContext) -> Requests:
    """The connection's `Requests` (made on first use)."""
    nc: Client = js._nc
    found = _requests.get(nc)
    if found is None:
        found = _requests[nc] = Requests(nc)
    return found


def timeout_of(js: JetStreamContext) -> float:
    return float(getattr(js, "_timeout", 5.0) or 5.0)


async def publish(
    js: JetStreamContext, subject: str, payload: bytes, stream: str, headers: dict[str, str]
) -> dict[str, Any]:
    """`js.publish` with the stream's answer as a dict (`seq`, `duplicate`...)."""
    headers["Nats-Expected-Stream"] = stream
    try:
        msg = await requests_of(js).request(subject, payload, timeout_of(js), headers)
    except nats.errors.NoRespondersError:
        raise nats.js.errors.NoStreamResponseError from None
    answer: dict[str, Any] = json.loads(msg.data)
    if "error" in answer:
        nats.js.errors.APIError.from_error(answer["error"])  # raises
    return answer


async def direct_last(js: JetStreamContext, stream: str, subject: str) -> Msg:
    """The last message on `subject` (a filter may have wildcards), by a direct get;
    NotFoundError when there is none. The sequence is in the `Nats-Sequence` header."""
    body = b'{"last_by_subj":' + json.dumps(subject).encode() + b"}"
    msg = await requests_of(js).request(f"$JS.API.DIRECT.GET.{stream}", body, timeout_of(js))
    if not msg.data:
        status = (msg.headers or {}).get("Status")
        if status == "404":
            raise nats.js.errors.NotFoundError
        if status:
            nats.js.errors.APIError.from_msg(msg)  # raises
    return msg


def sequence_of(msg: Msg) -> int:
    with contextlib.suppress(KeyError, ValueError, TypeError):
        return int((msg.headers or {})["Nats-Sequence"])
    return 0


async def kv_value(kv: KeyValue, key: str) -> bytes | None:
    """A KV key's current value, by a direct get; None when it has none (never put,
    deleted or purged). What `kv.get` answers, at the cost of one request."""
    if not kv._direct:  # a bucket made without direct gets
        try:
            return (await kv.get(key)).value
        except nats.js.errors.KeyNotFoundError:
            return None
    try:
        msg = await direct_last(kv._js, kv._stream, f"{kv._pre}{key}")
    except nats.js.errors.NotFoundError:
        return None
    if msg.headers and msg.headers.get("KV-Operation") in ("DEL", "PURGE"):
        return None
    return msg.data
