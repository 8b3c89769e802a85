"""scheduler's subscriber: a due schedule (published by nats-server on
`mail.sched.due.<id>`) becomes the message's `accepted`, appended with a
compare-and-set on its last event so a cancel or reschedule landing at the same
instant wins or loses cleanly; then ack.

Its recipients are checked against the suppression set again at release, as intake
checked them: an address suppressed while the message waited is left out, and with
no `to` recipient left the message becomes `suppressed` instead."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from faststream.nats import NatsMessage
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import ValidationError

from services.intake.release import screened
from services.scheduler.logic import Drop, Release, Wait, on_due
from shared.consumers import TRANSIENT_ERRORS, retry_delay
from shared.eventlog import AppendConflict, append, history
from shared.events import utcnow
from shared.scheduling import Due

log = logging.getLogger("jetpost.scheduler")
WAIT_DELIVERIES = 40  # about 20 minutes of back-off for a schedule whose event never comes
TRIES = 5


@dataclass
class Scheduler:
    js: JetStreamContext
    suppressions: KeyValue

    async def handle(self, msg: NatsMessage) -> None:
        raw = msg.raw_message
        delivered = raw.metadata.num_delivered
        try:
            due = Due.model_validate_json(raw.data)
        except ValidationError as exc:
            log.error("unreadable due schedule on %s dropped: %s", raw.subject, exc)
            await msg.ack()
            return
        try:
            outcome = await self.release(due)
        except TRANSIENT_ERRORS as exc:
            log.warning("message %s: due schedule not handled, will retry: %r",
                        due.message_id, exc)  # fmt: skip
            await msg.nack(delay=retry_delay(delivered))
            return
        if isinstance(outcome, Wait) and delivered < WAIT_DELIVERIES:
            await msg.nack(delay=retry_delay(delivered, cap=60.0))
            return
        if not isinstance(outcome, Release):
            log.info("message %s: due schedule dropped: %s", due.message_id, outcome.why)
        await msg.ack()

    async def release(self, due: Due) -> Release | Drop | Wait:
        for _ in range(TRIES):
            stored = await history(self.js, due.message_id)
            outcome = on_due([e for _, e in stored], due, utcnow())
            if not isinstance(outcome, Release):
                return outcome
            event = await screened(self.suppressions, outcome.accepted)
            try:
                await append(self.js, event, expect_last=stored[-1][0])
            except AppendConflict:
                continue  # cancelled or moved at this instant: look again
            log.info("message %s released as %s (due %s)", due.message_id, event.type,
                     due.send_at.isoformat())  # fmt: skip
            return outcome
        return Wait("the message kept changing")

    async def give_up(self, msg: NatsMessage, exc: BaseException) -> None:
        log.error("due schedule on %s dropped after repeated errors: %r",
                  msg.raw_message.subject, exc)  # fmt: skip
