"""intake's subscriber: parse, decide, append, then ack.

A command is acked only once all its events are in MAIL_EVT. Transient NATS errors
nak the command with a delay; bad input never raises, it becomes `rejected`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faststream.nats import NatsMessage
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore
from pydantic import ValidationError

from services.intake import cancel, reschedule, resend, send_batch, suppress
from services.intake.change import Change, apply_change
from services.intake.logic import (
    CommandContext,
    Decision,
    admit,
    admitted,
    decide,
    describe,
    load_object,
    reject,
    with_suppressed,
)
from services.webhooks.commands import COMMANDS as WEBHOOK_COMMANDS
from services.webhooks.commands import decide_webhook
from shared.attachments import object_id
from shared.consumers import TRANSIENT_ERRORS, retry_delay
from shared.eventlog import AppendConflict, append, has_any_event, has_event, last_event
from shared.events import Accepted, Queued, Rejected, Scheduled, utcnow
from shared.idempotency import claim
from shared.mailbox import Mailbox
from shared.scheduling import CancelCommand, Due, RescheduleCommand, publish_schedule
from shared.subjects import (
    CMD_CANCEL,
    CMD_RESCHEDULE,
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
    max_schedule: float = 30 * 86400.0
    max_content: int = 400_000
    objects: ObjectStore | None = None  # the mail_attachments bucket
    blocked: frozenset[str] = frozenset()
    max_attachments: int = 10
    max_attachment_bytes: int = 10_000_000
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(64))
    # Batches record through their own slots: a campaign never queues a reset behind it.
    bulk_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(8))

    async def handle(self, msg: NatsMessage) -> None:
        raw = msg.raw_message
        meta = raw.metadata
        ctx = self.context(raw.subject, meta)
        try:
            decisions = await self.decide(raw.subject, raw.data, ctx)
            records = [self.bounded_record(d, ctx, raw.data, redelivered=meta.num_delivered > 1)
                       for d in decisions]  # fmt: skip
            if len(records) == 1:  # a send: no task to gather
                await records[0]
            else:
                await asyncio.gather(*records)
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
            max_schedule=self.max_schedule,
            max_content=self.max_content,
            blocked=self.blocked,
            max_attachments=self.max_attachments,
            max_attachment_bytes=self.max_attachment_bytes,
        )

    async def give_up(self, msg: NatsMessage, exc: BaseException) -> None:
        """A command that keeps failing is recorded as rejected, not retried forever."""
        raw = msg.raw_message
        ctx = self.context(raw.subject, raw.metadata)
        reason = f"internal error: {type(exc).__name__}: {str(exc)[:300]}"
        await append(self.js, reject(ctx, raw.data, reason).event)

    async def decide(self, subject: str, data: bytes, ctx: CommandContext) -> list[Decision]:
        decider = DECIDERS.get(subject)
        if decider is None:
            return [reject(ctx, data, f"unsupported command subject {subject!r}")]
        return await decider(self, data, ctx)

    async def resend(self, data: bytes, ctx: CommandContext) -> list[Decision]:
        command = resend.parse_resend(data, ctx)
        if isinstance(command, Decision):
            return [command]
        original = await last_event(self.js, command.message_id, "accepted")
        if not isinstance(original, Accepted):
            reason = f"message_id: no message {command.message_id!r} to resend"
            return [reject(ctx, data, reason, command.new_message_id)]
        return resend.resend(original, command, ctx)

    async def change(self, data: bytes, ctx: CommandContext, *, move: bool) -> list[Decision]:
        """Cancel or reschedule: applied here (compare-and-set on the log); a refusal
        is `rejected` under the command's own id, never on the message it names."""
        payload = load_object(data)
        if isinstance(payload, str):
            return [reject(ctx, data, payload)]
        model = RescheduleCommand if move else CancelCommand
        try:
            command = model.model_validate(payload)
        except ValidationError as exc:
            return [reject(ctx, data, describe(exc))]
        if isinstance(command, RescheduleCommand):
            now = ctx.stored_at or utcnow()
            if (command.send_at - now).total_seconds() > self.max_schedule:
                reason = f"send_at: at most {self.max_schedule:.0f} s ahead (JETPOST_MAX_SCHEDULE)"
                return [reject(ctx, data, reason)]
            outcome: Change = await apply_change(
                self.js, command.message_id, lambda h: reschedule.decide(command, h)
            )
        else:
            cancelling = command
            outcome = await apply_change(
                self.js, command.message_id, lambda h: cancel.decide(cancelling, h)
            )
        if outcome.refused:
            return [reject(ctx, data, outcome.detail)]
        return []

    async def bounded_record(
        self, decision: Decision, ctx: CommandContext, raw: bytes, *, redelivered: bool
    ) -> None:
        """A batch of 1000 entries must not fire 1000 x recipients KV lookups at once."""
        async with self.bulk_slots if ctx.subject == CMD_SEND_BATCH else self.slots:
            await self.record(decision, ctx, raw, redelivered=redelivered)

    async def record(
        self, decision: Decision, ctx: CommandContext, raw: bytes, *, redelivered: bool
    ) -> None:
        event = decision.event
        check_log = redelivered and decision.n == 1
        command = decision.command
        if admitted(event) is not None and command and command.idempotency_key:
            event = (await self._claim_key(decision, ctx, raw)).event
            check_log = True  # the key may have been claimed by an earlier delivery
        elif command and command.message_id:
            check_log = True  # a caller-chosen id may have been sent before
        if isinstance(event, Accepted | Scheduled | Queued):
            accepted = admitted(event)
            assert accepted is not None
            hits = await suppressed(
                self.suppressions, (m.email for m in accepted.envelope.recipients),
                () if accepted.transactional else accepted.tags,  # lists are tags
                utcnow(),
            )  # fmt: skip
            event = with_suppressed(event, hits)
        chosen = command is not None and command.message_id and not command.idempotency_key
        if chosen and admitted(event) is not None:
            fresh = not redelivered and not decision.has_uploads()
            if fresh and isinstance(event, Accepted) and await self._append_new(event, decision.n):
                return
            prior = await self._prior(event.message_id)
            if prior is not None and prior.command_seq != ctx.seq:
                reason = f"message_id: {event.message_id!r} is already used by another message"
                taken = f"taken-{ctx.fallback_id()[:16]}-{event.message_id}"[:128]
                await append(self.js, reject(ctx, raw, reason, taken).event)
                log.info("command seq=%s rejected: %s", ctx.seq, reason)
                return
            check_log = prior is not None  # this command, delivered again
        if check_log and await has_event(self.js, event.message_id, event.type):
            log.info("command seq=%s already recorded as %s", ctx.seq, event.message_id)
            return
        if isinstance(event, Accepted | Scheduled | Queued) and (uploads := decision.uploads()):
            await self.store(uploads)
        if isinstance(event, Scheduled):
            # The schedule first: a crash before the append leaves a schedule that the
            # scheduler holds back until its `scheduled` is in the log.
            due = Due(message_id=event.message_id, revision=event.event_id, send_at=event.send_at)
            await publish_schedule(self.js, due)
        await append(self.js, event, decision.n)
        if isinstance(event, Rejected):
            log.info("command seq=%s rejected: %s", ctx.seq, event.reason)

    async def store(self, uploads: list[bytes]) -> None:
        """Attachment content into the Object Store, named by its hash (a retry puts
        the same object again)."""
        assert self.objects is not None, "intake built without the attachments bucket"
        for data in uploads:
            await self.objects.put(object_id(data), data)

    async def _append_new(self, event: Accepted, n: int) -> bool:
        """A caller-chosen id is usually new: its `accepted` is appended only if the
        message has no event at all (compare-and-set on its subjects), which spares the
        look at its history. False, with nothing appended: it has some (or the append
        was a duplicate of a stored one), and the history decides."""
        try:
            ack = await append(self.js, event, n, expect_last=0)
        except AppendConflict:
            return False
        return not ack.duplicate

    async def _prior(self, message_id: str) -> Accepted | None:
        """What a caller-chosen id already holds, if anything: one look at the whole
        message first (a fresh id, the usual case, has no events at all), then its
        admission events at once."""
        if not await has_any_event(self.js, message_id):
            return None
        found = await asyncio.gather(
            *(last_event(self.js, message_id, kind) for kind in ("accepted", "scheduled", "queued"))
        )
        return next((a for e in found if e is not None and (a := admitted(e))), None)

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
        return Decision(admit(command, ctx, held.message_id), command)


Decider = Callable[[Intake, bytes, CommandContext], Awaitable[list[Decision]]]


def pure(decide_: Callable[[bytes, CommandContext], list[Decision]]) -> Decider:
    """A command decided from its bytes alone (no log, no KV)."""

    async def run(_: Intake, data: bytes, ctx: CommandContext) -> list[Decision]:
        return decide_(data, ctx)

    return run


def webhook(subject: str) -> Decider:
    """Changes to webhook endpoints (services/webhooks/commands.py)."""

    async def run(intake: Intake, data: bytes, ctx: CommandContext) -> list[Decision]:
        return await decide_webhook(intake.js, subject, data, ctx)

    return run


# One entry per command subject (STYLE: dispatch by table).
DECIDERS: dict[str, Decider] = {
    CMD_SEND: pure(lambda data, ctx: [decide(data, ctx)]),
    CMD_SEND_BATCH: pure(send_batch.decide_batch),
    CMD_SUPPRESS: pure(lambda data, ctx: [suppress.decide_suppression(data, ctx, remove=False)]),
    CMD_UNSUPPRESS: pure(lambda data, ctx: [suppress.decide_suppression(data, ctx, remove=True)]),
    CMD_RESEND: Intake.resend,
    CMD_CANCEL: lambda intake, data, ctx: intake.change(data, ctx, move=False),
    CMD_RESCHEDULE: lambda intake, data, ctx: intake.change(data, ctx, move=True),
    **{subject: webhook(subject) for subject in WEBHOOK_COMMANDS},
}
