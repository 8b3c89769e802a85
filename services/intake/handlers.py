"""intake's subscriber: parse, decide, append, then ack.

A command is acked only once its event is in MAIL_EVT. Transient NATS errors nak
the command with a delay; bad input never raises, it becomes `rejected`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from faststream.nats import NatsMessage
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from services.intake.logic import CommandContext, Decision, accept, decide, reject
from shared.consumers import TRANSIENT_ERRORS, retry_delay
from shared.eventlog import append, has_event
from shared.events import Accepted, Rejected
from shared.idempotency import claim
from shared.mailbox import Mailbox
from shared.subjects import CMD_SEND

log = logging.getLogger("jetpost.intake")


@dataclass
class Intake:
    js: JetStreamContext
    idempotency: KeyValue
    default_sender: Mailbox
    templates: frozenset[str]

    async def handle(self, msg: NatsMessage) -> None:
        raw = msg.raw_message
        meta = raw.metadata
        ctx = CommandContext(
            subject=raw.subject,
            seq=meta.sequence.stream,
            stored_at=meta.timestamp,
            default_sender=self.default_sender,
            templates=self.templates,
        )
        if raw.subject != CMD_SEND:
            decision = reject(ctx, raw.data, f"unsupported command subject {raw.subject!r}")
        else:
            decision = decide(raw.data, ctx)
        try:
            await self.record(decision, ctx, raw.data, redelivered=meta.num_delivered > 1)
        except TRANSIENT_ERRORS as exc:
            log.warning("command seq=%s not recorded, will retry: %r", ctx.seq, exc)
            await msg.nack(delay=retry_delay(meta.num_delivered))
            return
        await msg.ack()

    async def record(
        self, decision: Decision, ctx: CommandContext, raw: bytes, *, redelivered: bool
    ) -> None:
        event = decision.event
        if isinstance(event, Accepted) and decision.command and decision.command.idempotency_key:
            event = (await self._claim_key(decision, ctx, raw)).event
            redelivered = True  # the key may have been claimed by an earlier delivery
        elif decision.command and decision.command.message_id:
            redelivered = True  # a caller-chosen id may have been sent before
        if redelivered and await has_event(self.js, event.message_id, event.type):
            log.info("command seq=%s already recorded as %s", ctx.seq, event.message_id)
            return
        await append(self.js, event)
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
