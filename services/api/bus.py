"""The API's side of NATS: publish commands (acked by JetStream), claim idempotency
keys, read one message's history from the log.

Every failure to reach NATS surfaces as `Unavailable` (a 503), never as a 500,
and nothing here waits longer than JETPOST_API_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from litestar.serialization import encode_json
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from services.api.problems import TooLarge, Unavailable
from shared import inflight
from shared.consumers import TRANSIENT_ERRORS
from shared.eventlog import history
from shared.events import Event
from shared.idempotency import Claim, claim
from shared.nats_connect import NatsTarget, connect
from shared.nats_setup import Definitions, apply_definitions
from shared.subjects import CMD_STREAM, EVT_STREAM, IDEMPOTENCY_BUCKET
from shared.telemetry import tracing

log = logging.getLogger("jetpost.api")

MAX_HISTORY = 10_000  # events read for one message's `as_of`; a message has a few dozen


@contextlib.contextmanager
def _reachable(what: str) -> Iterator[None]:
    try:
        yield
    except TRANSIENT_ERRORS as exc:
        raise Unavailable(f"NATS unavailable ({what}): {type(exc).__name__}") from exc


class Bus:
    def __init__(self, nc: Client, js: JetStreamContext, kv: KeyValue, timeout: float) -> None:
        self.nc, self.js, self.kv, self.timeout = nc, js, kv, timeout
        # acks come back on one reply subscription (shared/inflight.py): a sixth of a
        # POST went to nats-py's per-request token, future and wait_for
        self.requests = inflight.Requests(nc)

    @classmethod
    async def connect(cls, target: NatsTarget, definitions: Definitions, timeout: float) -> Bus:
        async def on_disconnect() -> None:
            if not nc.is_draining and not nc.is_closed:
                log.warning("NATS disconnected; reconnecting")

        nc = await connect(target, name="jetpost-api", disconnected_cb=on_disconnect)
        try:
            js = nc.jetstream(timeout=timeout)
            await apply_definitions(js, definitions)  # any process may come up first
            return cls(nc, js, await js.key_value(IDEMPOTENCY_BUCKET), timeout)
        except BaseException:
            await nc.close()
            raise

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    def _check(self) -> None:
        # While reconnecting a publish would sit in the client's buffer: answer now.
        if not self.connected:
            raise Unavailable("NATS unavailable: not connected")

    @contextlib.contextmanager
    def reachable(self, what: str) -> Iterator[None]:
        """For work on `js` done elsewhere: 503 while NATS is away, never a 500."""
        self._check()
        with _reachable(what):
            yield

    async def publish(self, subject: str, payload: dict[str, Any], msg_id: str) -> int:
        """Publish a command and wait for JetStream's ack; returns its stream sequence."""
        self._check()
        data = encode_json(payload)  # msgspec: what Litestar decoded the body with
        if len(data) > self.nc.max_payload:
            raise TooLarge(f"the command is {len(data)} bytes; NATS takes {self.nc.max_payload}")
        headers = {"Nats-Msg-Id": msg_id}
        # the command carries the request's trace on to intake and the whole pipeline
        with _reachable("publish"), tracing.producer_span(f"{subject} publish", headers):
            ack = await inflight.acked(self.requests, subject, data, CMD_STREAM, headers,
                                       self.timeout)  # fmt: skip
            return int(ack.seq)

    async def claim(self, key: str, message_id: str, body_hash: str) -> Claim:
        self._check()
        with _reachable("idempotency key"):
            return await claim(self.kv, key, message_id, body_hash)

    async def history(self, message_id: str) -> list[Event]:
        """The message's events in log order, by direct gets (no consumer to clean up)."""
        self._check()
        with _reachable("history"):
            return [event for _, event in await history(self.js, message_id, MAX_HISTORY)]

    async def last_seq(self) -> int:
        self._check()
        with _reachable("stream info"):
            info = await self.js.stream_info(EVT_STREAM)
        return int(info.state.last_seq)

    async def close(self) -> None:
        if self.nc.is_connected:
            with contextlib.suppress(*TRANSIENT_ERRORS):
                await asyncio.wait_for(self.nc.drain(), self.timeout)
        if not self.nc.is_closed:
            await self.nc.close()
