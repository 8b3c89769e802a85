"""sender's subscriber: `rendered` in; `attempted`, then the outcome, appended; then
ack (done) or nak with a delay (deferred: JetStream redelivers it later).

Before every send the log is asked (one direct get, history.py) whether the message
is done already and which attempt this is: a consumer-state rollback after a
nats-server crash cannot resend a delivered mail, and every real attempt gets its
own events. Over a domain's limit, or with every provider's circuit open, the
message is naked with a short delay and no attempt is counted: the consumer goes on
with other mail.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

from faststream.nats import NatsMessage
from nats.js import JetStreamContext
from pydantic import ValidationError

from services.sender.attachments import load
from services.sender.dkim_sign import DkimMissing, DkimSigner
from services.sender.history import is_done, last_event, next_attempt
from services.sender.logic import decide_outcome, refused, unsendable
from services.sender.mailer import Mail
from services.sender.mime import envelope_recipients
from services.sender.ops import OpsPublisher
from services.sender.outcome import Outcome
from services.sender.outgoing import make_mail
from services.sender.routing import Router
from services.sender.throttle import Lease, Throttle
from services.sender.throttle_rules import is_slow_down
from shared.consumers import TRANSIENT_ERRORS, retry_delay
from shared.eventlog import AppendConflict, append, is_cancelled
from shared.events import Attempted, Event, Rendered, event_id_for, parse_event
from shared.settings import Settings
from shared.telemetry.metrics import note_recipients

log = logging.getLogger("jetpost.sender")


def describe(event: Event) -> str:
    """One log line's worth: `delivered (attempt 1): 250 OK`."""
    detail = getattr(event, "response", "") or getattr(event, "reason", "")
    return f"{event.type} (attempt {getattr(event, 'attempt', '?')}): {detail}"


RESULT_APPEND_TRIES = 8


def domains_of(recipients: list[str] | tuple[str, ...]) -> list[str]:
    return sorted({rcpt.rpartition("@")[2].lower() for rcpt in recipients})


@dataclass
class Sender:
    js: JetStreamContext
    mailer: Router
    settings: Settings
    signer: DkimSigner | None = None
    throttle: Throttle | None = None
    ops: OpsPublisher | None = None

    async def handle(self, msg: NatsMessage) -> None:
        raw = msg.raw_message
        message_id = raw.subject.split(".")[2]
        attempt, seq = 1, 0
        try:
            try:  # parsed once: the delivered event is usually the message's last
                parsed: Event | Exception = parse_event(raw.data)
            except (ValidationError, ValueError) as exc:
                parsed = exc
            delivered = raw.metadata.sequence.stream
            known = None if isinstance(parsed, Exception) else (delivered, parsed)
            first = raw.metadata.num_delivered == 1  # then `known` is checked by the append
            seq, last = await last_event(self.js, message_id, known, first)
            if is_done(last):
                await msg.ack()
                return
            attempt = next_attempt(last)
            if isinstance(parsed, Exception):
                raise parsed
            rendered = parsed
            if not isinstance(rendered, Rendered):
                raise TypeError(f"expected a rendered event, got {rendered.type}")
        except (ValidationError, TypeError) as exc:
            await self._settle(msg, [unsendable(message_id, attempt, exc)], None)
            return
        except TRANSIENT_ERRORS as exc:
            log.warning("message %s: attempt not started: %r", message_id, exc)
            await msg.nack(delay=retry_delay(raw.metadata.num_delivered))
            return
        closed_in = self.mailer.retry_in()
        if closed_in > 0:  # every circuit open: wait for the first probe, count nothing
            await msg.nack(delay=closed_in + random.uniform(0, 1))
            return
        # the throttle before the MIME is built: a message over a limit costs little
        lease = await self._lease(msg, await self._throttle_keys(rendered))
        if lease is None:
            return
        try:
            blobs = await load(self.js, rendered.attachments)
        except TRANSIENT_ERRORS as exc:
            await self._release(lease)
            log.warning("message %s: attachments not loaded: %r", message_id, exc)
            await msg.nack(delay=retry_delay(raw.metadata.num_delivered))
            return
        except ValueError as exc:  # MissingAttachment: the mail cannot be built
            await self._release(lease)
            await self._settle(msg, [unsendable(message_id, attempt, exc)], None)
            return
        try:
            mail = make_mail(rendered, self.settings.bounce_domain, self.signer, blobs)
        except DkimMissing as exc:
            await self._release(lease)
            await self._settle(msg, [refused(rendered, raw.subject, str(exc))], None)
            return
        except (ValueError, TypeError) as exc:  # email.policy refuses what it cannot send
            await self._release(lease)
            await self._settle(msg, [unsendable(message_id, attempt, exc)], None)
            return
        note_recipients(mail.recipients)  # the outcome's domain label, for any provider
        try:
            # compare-and-set on what `last_event` read (or, on a first delivery, on the
            # delivered event): whatever was appended since, a cancel or a delivery,
            # makes this conflict, and once `attempted` is in, no cancel passes it
            attempted = self._attempted(rendered, attempt)
            if (await append(self.js, attempted, n=attempt, expect_last=seq)).duplicate:
                # this attempt is stored already (its id deduplicated): the log moved on
                raise AppendConflict(f"attempt {attempt} of {message_id} is in the log")
        except AppendConflict:  # something came first: a cancel, or another worker
            await self._release(lease)
            await self._conflicted(msg, message_id)
            return
        except TRANSIENT_ERRORS as exc:  # the attempt could not be recorded: not sent
            await self._release(lease)
            log.warning("message %s: attempt %s not started: %r", message_id, attempt, exc)
            await msg.nack(delay=retry_delay(raw.metadata.num_delivered))
            return
        try:
            outcome = await self.mailer.send(mail)
        except TRANSIENT_ERRORS as exc:  # the provider was not reached: nothing sent
            log.warning("message %s: attempt %s not started: %r", message_id, attempt, exc)
            await msg.nack(delay=retry_delay(raw.metadata.num_delivered))
            return
        finally:
            await self._release(lease)
        await self._after(mail, outcome)
        unrouted = self.mailer.retry_in() + 1.0 if outcome.provider == "none" else None
        events, delay = decide_outcome(rendered, outcome, attempt, self.settings, unrouted)
        await self._settle(msg, events, delay)

    async def _conflicted(self, msg: NatsMessage, message_id: str) -> None:
        """The message's history moved past what `attempted` expected: cancelled,
        it is done; anything else, it is looked at again shortly (from the log)."""
        try:
            cancelled = await is_cancelled(self.js, message_id)
        except TRANSIENT_ERRORS:
            cancelled = False
        if cancelled:
            log.info("message %s cancelled before its attempt", message_id)
            await msg.ack()
        else:
            await msg.nack(delay=retry_delay(msg.raw_message.metadata.num_delivered))

    async def _throttle_keys(self, rendered: Rendered) -> list[str]:
        """Recipient domains, and what the provider adds (mx://: MX hosts); [] when
        an address has no IDNA form (the mail is refused when it is built)."""
        try:
            recipients = tuple(envelope_recipients(rendered))
        except ValueError:
            return []
        try:
            extra = await self.mailer.throttle_keys(recipients)
        except TRANSIENT_ERRORS:
            extra = []
        return domains_of(recipients) + extra

    async def _release(self, lease: Lease) -> None:
        if self.throttle is not None:
            await self.throttle.release(lease)

    async def _lease(self, msg: NatsMessage, domains: list[str]) -> Lease | None:
        """The throttle's lease, or None once the message is naked (over a limit)."""
        if self.throttle is None:
            return Lease()
        try:
            lease = await self.throttle.acquire(domains)
        except TRANSIENT_ERRORS as exc:
            log.warning("throttle unavailable: %r", exc)
            lease = retry_delay(msg.raw_message.metadata.num_delivered)
        if isinstance(lease, float):
            await msg.nack(delay=lease)
            return None
        return lease

    async def _after(self, mail: Mail, outcome: Outcome) -> None:
        """A "slow down" answer lowers the domains' rates for a while."""
        if self.throttle is None or outcome.connection:
            return
        if not is_slow_down(outcome.code, outcome.response):
            return
        for domain in domains_of(mail.recipients):
            try:
                factor = await self.throttle.slow_down(domain)
            except TRANSIENT_ERRORS as exc:
                log.warning("could not record slow-down for %s: %r", domain, exc)
                continue
            if self.ops is not None and factor is not None:
                await self.ops.slowed(domain, factor, self.settings.throttle_slow_for)

    async def _settle(
        self, msg: NatsMessage, events: list[tuple[Event, int]], delay: float | None
    ) -> None:
        """Append the outcome (retrying: the mail may be out already), then ack or nak."""
        for tries in range(1, RESULT_APPEND_TRIES + 1):
            try:
                for event, n in events:
                    await append(self.js, event, n)
                    if log.isEnabledFor(logging.INFO):  # describe() is not free, per mail
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
            provider=self.mailer.planned(),
        )

    async def give_up(self, msg: NatsMessage, exc: BaseException) -> None:
        """A rendered message that keeps failing unexpectedly ends as `failed`."""
        raw = msg.raw_message
        message_id = raw.subject.split(".")[2]
        failed, n = unsendable(message_id, raw.metadata.num_delivered, exc)
        await append(self.js, failed, n)
