"""Reading the endpoint events from MAIL_EVT, from any sequence on: an ephemeral,
unacked consumer filtered to the `webhook_*` event types, recreated after the last
event handed out when the connection or the server loses it."""

from __future__ import annotations

import contextlib
import logging

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from services.webhooks.endpoints import ENDPOINT_FILTERS, Endpoint, fold_all
from shared.events import Event, parse_event
from shared.subjects import EVT_STREAM

log = logging.getLogger("jetpost.webhooks")


class EndpointLog:
    def __init__(self, js: JetStreamContext, start_seq: int = 1) -> None:
        self.js = js
        self.next_seq = start_seq
        self._sub: JetStreamContext.PullSubscription | None = None
        self._name = ""

    async def _open(self) -> JetStreamContext.PullSubscription:
        if self._sub is None:
            info = await self.js.add_consumer(EVT_STREAM, ConsumerConfig(
                filter_subjects=ENDPOINT_FILTERS, ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.next_seq,
                inactive_threshold=60.0, mem_storage=True,
            ))  # fmt: skip
            self._name = info.name
            self._sub = await self.js.pull_subscribe_bind(consumer=info.name, stream=EVT_STREAM)
        return self._sub

    async def read(self, timeout: float = 1.0) -> tuple[list[tuple[int, Event]], bool]:
        """What arrived (in log order), and whether that is everything up to now."""
        try:
            sub = await self._open()
            msgs = await sub.fetch(256, timeout=timeout)
        except TimeoutError:
            return [], True
        except (nats.errors.Error, NotFoundError) as exc:
            log.warning("endpoint events: reading again from %d: %r", self.next_seq, exc)
            await self.close()
            return [], False
        items: list[tuple[int, Event]] = []
        for msg in msgs:
            meta = msg.metadata
            if meta.sequence.stream < self.next_seq:
                continue
            self.next_seq = meta.sequence.stream + 1
            try:
                items.append((meta.sequence.stream, parse_event(msg.data)))
            except (ValidationError, ValueError) as exc:
                log.error("unreadable endpoint event %s: %s", msg.subject, exc)
        return items, bool(msgs) and msgs[-1].metadata.num_pending == 0

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error, NotFoundError, TimeoutError):
                await self._sub.unsubscribe()
                await self.js.delete_consumer(EVT_STREAM, self._name)
        self._sub = None


async def current_endpoints(js: JetStreamContext) -> dict[str, Endpoint]:
    """Every endpoint as the log has it now (`jetpost webhooks list`)."""
    reader = EndpointLog(js)
    endpoints: dict[str, Endpoint] = {}
    try:
        while True:
            items, caught_up = await reader.read(timeout=0.5)
            endpoints = fold_all(items, endpoints)
            if caught_up:
                return endpoints
    finally:
        await reader.close()
