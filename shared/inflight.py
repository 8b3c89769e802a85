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
callers' error handling is the one they had. They come off the wire by a raw
subscription (shared/raw_inbox.py): no `Msg`, header dict or queue hop per answer; an
`Answer`'s headers are parsed, as nats-py would, only when read (a publish ack has
none).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref
from dataclasses import dataclass
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.kv import KeyValue

from shared import wire
from shared.raw_inbox import parse_headers, subscribe_raw

SWEEP = 0.25  # seconds between looks for expired requests
NO_RESPONDERS = "503"


@dataclass(frozen=True, slots=True)
class Answer:
    """A reply as it came: its payload and its raw header block."""

    data: bytes
    block: bytes | None

    @property
    def headers(self) -> dict[str, str] | None:
        """What nats-py's `Msg.headers` would hold."""
        return parse_headers(self.block)


class Requests:
    """Requests on one connection, answered on one wildcard reply subscription."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.prefix = ""
        self._prefix = b""
        self.pending: dict[bytes, tuple[asyncio.Future[Answer], float]] = {}
        self._serial = 0
        self._starting = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        async with self._starting:
            if self.prefix:  # another request started it meanwhile
                return
            prefix = f"{self.nc.new_inbox()}."
            await subscribe_raw(self.nc, f"{prefix}*", self._answered)
            self._prefix = prefix.encode()
            self.prefix = prefix

    def _answered(self, subject: bytes, reply: bytes, data: bytes, block: bytes | None) -> None:
        entry = self.pending.pop(subject[len(self._prefix) :], None)
        if entry is not None and not entry[0].done():
            entry[0].set_result(Answer(data, block))

    async def request(
        self, subject: str, payload: bytes, timeout: float, headers: dict[str, str] | None = None
    ) -> Answer:
        if not self.prefix:
            await self._start()
        self._serial += 1
        token = format(self._serial, "x")
        key = token.encode()
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.pending[key] = (future, time.monotonic() + timeout)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="jetpost-requests-sweeper")
        try:
            await self.nc.publish(subject, payload, reply=self.prefix + token, headers=headers)
            answer = await future
        finally:
            self.pending.pop(key, None)
        if not answer.data and (found := answer.headers) and found.get("Status") == NO_RESPONDERS:
            raise nats.errors.NoRespondersError
        return answer

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


def enable(js: JetStreamContext) -> None:
    """Requests of this connection (every JetStream context of it) go through here
    from now on, and its publishes through shared/wire.py; other connections keep
    nats-py's own path. The services' runner enables its connection: the pipeline's
    hot path is the one that pays."""
    if js._nc not in _requests:
        _requests[js._nc] = Requests(js._nc)
        wire.enable(js._nc)


def requests_of(js: JetStreamContext) -> Requests | None:
    """The connection's `Requests`, if it was enabled."""
    return _requests.get(js._nc)


def timeout_of(js: JetStreamContext) -> float:
    return float(getattr(js, "_timeout", 5.0) or 5.0)


@dataclass(frozen=True)
class Stored:
    """A message read back from a stream by a direct get."""

    seq: int
    data: bytes
    headers: dict[str, str]


class _Ack(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool | None = None
    error: dict[str, Any] | None = None


_decode_ack = msgspec.json.Decoder(_Ack).decode


async def acked(
    requests: Requests, subject: str, payload: bytes, stream: str, headers: dict[str, str],
    timeout: float,
) -> PubAck:  # fmt: skip
    """Publish to `stream` and wait for its ack: what `js.publish` answers, or raises
    (no stream took the subject: NoStreamResponseError; an error ack: its APIError
    subclass; no ack in time: nats.errors.TimeoutError)."""
    headers["Nats-Expected-Stream"] = stream
    try:
        msg = await requests.request(subject, payload, timeout, headers)
    except nats.errors.NoRespondersError:
        raise nats.js.errors.NoStreamResponseError from None
    try:
        answer = _decode_ack(msg.data)
    except msgspec.DecodeError as exc:
        raise nats.js.errors.APIError(description=f"unreadable ack: {exc}") from None
    if answer.error is not None:
        nats.js.errors.APIError.from_error(answer.error)  # raises
    return PubAck(stream=answer.stream or stream, seq=answer.seq, duplicate=answer.duplicate)


async def publish(
    js: JetStreamContext, subject: str, payload: bytes, stream: str, headers: dict[str, str]
) -> PubAck:
    """`js.publish(subject, payload, stream=stream, headers=headers)`."""
    requests = requests_of(js)
    if requests is None:
        return await js.publish(subject, payload, stream=stream, headers=headers)
    return await acked(requests, subject, payload, stream, headers, timeout_of(js))


async def direct_last(js: JetStreamContext, stream: str, subject: str) -> Stored:
    """The last message on `subject` (a filter may have wildcards), by a direct get;
    NotFoundError when there is none."""
    requests = requests_of(js)
    if requests is None:
        raw = await js.get_last_msg(stream, subject, direct=True)
        return Stored(int(raw.seq or 0), raw.data or b"", dict(raw.headers or {}))
    body = b'{"last_by_subj":' + json.dumps(subject).encode() + b"}"
    answer = await requests.request(f"$JS.API.DIRECT.GET.{stream}", body, timeout_of(js))
    headers = answer.headers or {}
    if not answer.data:
        status = headers.get("Status")
        if status == "404":
            raise nats.js.errors.NotFoundError
        if status == "503":  # as nats.js.errors.APIError.from_msg
            raise nats.js.errors.ServiceUnavailableError
        if status:
            raise nats.js.errors.APIError(code=int(status), description=headers["Description"])
    return Stored(_sequence(headers), answer.data, headers)


def _sequence(headers: dict[str, str]) -> int:
    with contextlib.suppress(KeyError, ValueError):
        return int(headers["Nats-Sequence"])
    return 0


async def kv_value(kv: KeyValue, key: str) -> bytes | None:
    """A KV key's current value; None when it has none (never put, deleted or purged):
    what `kv.get` answers, by one direct get where the connection is enabled."""
    if not kv._direct or requests_of(kv._js) is None:
        try:
            return (await kv.get(key)).value
        except nats.js.errors.KeyNotFoundError:
            return None
    try:
        stored = await direct_last(kv._js, kv._stream, f"{kv._pre}{key}")
    except nats.js.errors.NotFoundError:
        return None
    if stored.headers.get("KV-Operation") in ("DEL", "PURGE"):
        return None
    return stored.data
