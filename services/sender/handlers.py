"""sender's subscriber: `rendered` in; `attempted`, then the outcome, appended; then
ack (done) or nak with a delay (deferred: JetStream redelivers it later).

The attempt number is the consumer's delivery count, so each attempt's events have
their own dedup ids. After a crash, a redelivered message whose outcome is already
in the log is acked without sending again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from faststream.nats import NatsMessage
from nats.js import JetStreamContext
from pydantic import ValidationError

from services.sender.attachments import attach, load
from services.sender.logic import decide_outcome, unsendable
from services.sender.mime import build_message, envelope_recipients, envelope_sender
from services.sender.providers import Mailer
from shared.consumers import TRANSIENT_ERRORS, retry_delay
from shared.eventlog import append, first_of, is_cancelled
from shared.events import Attempted, Event, Rendered, event_id_for, parse_event
from shared.settings import Settings

log = logging.getLogger("jetpost.sender")


def describe(event: Event) -> str:
    """One log line's worth: `delivered (attempt 1): 250 OK`."""
    detail = getattr(event, "response", "") or getattr(event, "reason", "")
    return f"{event.type} (attempt {getattr(event, 'attempt', '?')}): {detail}"


DONE = ("delivered", "bounced", "failed", "cancelled")
RESULT_APPEND_TRIES = 8


@dataclass
class Sender:
    js: JetStreamContext
    mailer: Mailer
    settings: Settings

    async def handle(self, msg: NatsMessage) -> None:
        raw = msg.raw_message
        attempt = raw.metadata.num_delivered
        message_id = raw.subject.split(".")[2]
        try:
            if attempt > 1 and await first_of(self.js, message_id, DONE):
                await msg.ack()
                return
            rendered = parse_event(raw.data)
            if not isinstance(rendered, Rendered):
                raise TypeError(f"expected a rendered event, got {rendered.type}")
            await append(self.js, self._attempted(rendered, attempt), n=attempt)
            if await is_cancelled(
                self.js, message_id
            ):  # after `attempted`: a cancel cannot pass it
                await msg.ack()
                return
        except (ValidationError, TypeError) as exc:
            await self._settle(msg, [unsendable(message_id, attempt, exc)], None)
            return
        except TRANSIENT_ERRORS as exc:
            log.warning("message %s: attempt %s not started: %r", message_id, attempt, exc)
            await msg.nack(delay=retry_delay(attempt))
            return
        try:
            message = build_message(rendered)
            attach(message, rendered.attachments, await load(self.js, rendered.attachments))
        except (ValueError, TypeError) as exc:  # email.policy refuses what it cannot send
            await self._settle(msg, [unsendable(message_id, attempt, exc)], None)
            return
        outcome = await self.mailer.send(
            message,
            envelope_sender(rendered, self.settings.bounce_domain),
            envelope_recipients(rendered),
        )
        events, delay = decide_outcome(rendered, outcome, attempt, self.mailer.name, self.settings)
        await self._settle(msg, events, delay)

    async def _settle(
        self, msg: NatsMessage, events: list[tuple[Event, int]], delay: float | None
    ) -> None:
        """Append the outcome (retrying: the mail may be out already), then ack or nak."""
        for tries in range(1, RESULT_APPEND_TRIES + 1):
            try:
                for event, n in events:
                    await append(self.js, event, n)
                    log.info("message %s %s", event.message_id, describe(event))
                break
            except TRANSIENT_ERRORS as exc:
                if tries == RESULT_APPEND_TRIES:
                    log.error("outcome not appended, message will be retried: %r", exc)
                    await msg.nack(delay=retry_delay(tries))
                    return
                await asyncio.sleep(retry_delay(tries))
        if delay is None:
            await msg.ack()
        else:
            await msg.nack(delay=delay)

    def _attempted(self, rendered: Rendered, attempt: int) -> Attempted:
        return Attempted(
            event_id=event_id_for(rendered.message_id, "attempted", attempt),
            message_id=rendered.message_id,
            causation_id=rendered.event_id,
            correlation_id=rendered.correlation_id,
            attempt=attempt,
            provider=self.mailer.name,
        )

    async def give_up(self, msg: NatsMessage, exc: BaseException) -> None:
        """A rendered message that keeps failing unexpectedly ends as `failed`."""
        raw = msg.raw_message
        message_id = raw.subject.split(".")[2]
        failed, n = unsendable(message_id, raw.metadata.num_delivered, exc)
        await append(self.js, failed, n)
