"""bulk_lane's subscriber: a `queued` bulk message gets its `accepted` once the
renderer and sender have room (shared.lanes.Gate); then ack.

The append expects the `queued` event to still be the message's last one, so a
cancel that landed meanwhile wins and the message is never released. Its recipients
are checked against the suppression set again (services/intake/release.py): an address suppressed
while the message waited is left out; with no `to` left it becomes `suppressed`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from faststream.nats import NatsMessage
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import ValidationError

from services.intake.release import screened
from shared.consumers import TRANSIENT_ERRORS, retry_delay
from shared.eventlog import AppendConflict, append
from shared.events import Queued, parse_event, utcnow
from shared.lanes import Gate

log = logging.getLogger("jetpost.lanes")


@dataclass
class BulkLane:
    js: JetStreamContext
    gate: Gate
    suppressions: KeyValue

    async def handle(self, msg: NatsMessage) -> None:
        raw = msg.raw_message
        meta = raw.metadata
        try:
            queued = parse_event(raw.data)
            if not isinstance(queued, Queued):
                raise TypeError(f"expected a queued event, got {queued.type}")
        except (ValidationError, ValueError, TypeError) as exc:
            log.error("unreadable queued event on %s dropped: %s", raw.subject, exc)
            await msg.ack()
            return
        try:
            await self.gate.wait(on_wait=msg.in_progress)
            accepted = queued.accepted.model_copy(
                update={"occurred_at": utcnow(), "causation_id": queued.event_id, "bulk": True}
            )
            event = await screened(self.suppressions, accepted)
            await append(self.js, event, expect_last=meta.sequence.stream)
        except AppendConflict:
            log.info("message %s left the bulk lane before its turn", queued.message_id)
        except TRANSIENT_ERRORS as exc:
            log.warning("message %s not released, will retry: %r", queued.message_id, exc)
            await msg.nack(delay=retry_delay(meta.num_delivered))
            return
        await msg.ack()

    async def give_up(self, msg: NatsMessage, exc: BaseException) -> None:
        log.error("queued event on %s dropped after repeated errors: %r",
                  msg.raw_message.subject, exc)  # fmt: skip
