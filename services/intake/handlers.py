"""intake's subscriber: parse, decide, append, then ack.

A command is acked only once all its events are in MAIL_EVT. Transient NATS errors
nak the command with a delay; bad input never raises, it becomes `rejected`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from faststream.nats import NatsMessage
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from services.intake.logic import (
    CommandContext,
    Decision,
    accept,
    decide,
    reject,
    without_suppressed,
)
from services.intake.other_commands import (
    decide_batch,
    decide_suppression,
    parse_resend,
    resend,
)
from services.webhooks.commands import COMMANDS as WEBHOOK_COMMANDS
from services.webhooks.commands import decide_webhook
from shared.consumers import TRANSIENT_ERRORS, retry_delay
from shared.eventlog import append, has_event, last_event
from shared.events import Accepted, Rejected, utcnow
from shared.idempotency import claim
from shared.mailbox import Mailbox
from shared.subjects import (
    CMD_RESEND,
    CMD_SEND,
    CMD_SEND_BATCH,
    CMD_SUPPRESS,
    CMD_UNSUPPRESS,
)
from shared.suppression_set import suppressed

log = logging.getLogger("jetpost.intake")


@dataclass
class Intake:
    js: JetStreamContext
    idempotency: KeyValue
    default_sender: Mailbox
    templates: frozenset[str]
    suppressions: KeyValue
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(64))

    async def handle(self, msg: NatsMessage) -> None:
        raw = msg.raw_message
        meta = raw.metadata
        ctx = self.context(raw.subject, meta)
        try:
            decisions = await self.decide(raw.subject, raw.data, ctx)
            await asyncio.gather(
                *(self.bounded_record(d, ctx, raw.data, redelivered=meta.num_delivered > 1)
                  for d in decisions)
            )  # fmt: skip
        except TRANSIENT_ERRORS as exc:
            log.warning("command seq=%s not recorded, will retry: %r", ctx.seq, exc)
            await msg.nack(delay=retry_delay(meta.num_delivered))
            return
        await msg.ack()

    def context(self, subject: str, meta: Any) -> CommandContext:
        return CommandContext(
            subject=subject,
            seq=meta.sequence.stream,
            stored_at=meta.timestamp,
            default_sender=self.default_sender,
            templates=self.templates,
        )

    async def give_up(self, msg: NatsMessage, exc: BaseException) -> None:
        """A command that keeps failing is recorded as rejected, not retried forever."""
        raw = msg.raw_message
        ctx = self.context(raw.subject, raw.metadata)
        reason = f"internal error: {type(exc).__name__}: {str(exc)[:300]}"
        await append(self.js, reject(ctx, raw.data, reason).event)

    async def decide(self, subject: str, data: bytes, ctx: CommandContext) -> list[Decision]:
        if subject == CMD_SEND:
            return [decide(data, ctx)]
        if subject == CMD_SEND_BATCH:
            return decide_batch(data, ctx)
        if subject in (CMD_SUPPRESS, CMD_UNSUPPRESS):
            return [decide_suppression(data, ctx, remove=subject == CMD_UNSUPPRESS)]
        if subject == CMD_RESEND:
            command = parse_resend(data, ctx)
            if isinstance(command, Decision):
                return [command]
            original = await last_event(self.js, command.message_id, "accepted")
            if not isinstance(original, Accepted):
                reason = f"message_id: no message {command.message_id!r} to resend"
                return [reject(ctx, data, reason, command.new_message_id)]
            return resend(original, command, ctx)
        if subject in WEBHOOK_COMMANDS:
            return await decide_webhook(self.js, subject, data, ctx)
        return [reject(ctx, data, f"unsupported command subject {subject!r}")]

    async def bounded_record(
        self, decision: Decision, ctx: CommandContext, raw: bytes, *, redelivered: bool
    ) -> None:
        """A batch of 1000 entries must not fire 1000 x recipients KV lookups at once."""
        async with self.slots:
            await self.record(decision, ctx, raw, redelivered=redelivered)

    async def record(
        self, decision: Decision, ctx: CommandContext, raw: bytes, *, redelivered: bool
    ) -> None:
        event = decision.event
        check_log = redelivered and decision.n == 1
        if isinstance(event, Accepted) and decision.command and decision.command.idempotency_key:
            event = (await self._claim_key(decision, ctx, raw)).event
            check_log = True  # the key may have been claimed by an earlier delivery
        elif decision.command and decision.command.message_id:
            check_log = True  # a caller-chosen id may have been sent before
        if isinstance(event, Accepted):
            hits = await suppressed(
                self.suppressions, (m.email for m in event.envelope.recipients),
                () if event.transactional else event.tags,  # lists are tags
                utcnow(),
            )  # fmt: skip
            event = without_suppressed(event, hits)
        if check_log and await has_event(self.js, event.message_id, event.type):
            log.info("command seq=%s already recorded as %s", ctx.seq, event.message_id)
            return
        await append(self.js, event, decision.n)
        if isinstance(event, Rejected):
            log.info("command seq=%s rejected: %s", ctx.seq, event.reason)

    async def _claim_key(self, decision: Decision, ctx: CommandContext, raw: bytes) -> Decision:
        """The same key with the same content is the same message again; with other
        content the command is refused."""
        command = decision.command
        assert command is not None and command.idempotency_key is not None
        held = await claim(
            self.idempotency, command.idempotency_key, decision.event.message_id,
            command.body_hash(),
        )  # fmt: skip
        if not held.same_body:
            reason = (
                f"idempotency_key: already used with a different body (message {held.message_id})"
            )
            return reject(ctx, raw, reason, decision.event.message_id)
        return Decision(accept(command, ctx, held.message_id), command)
