"""Deciding what a send command becomes. Pure: no I/O, no FastStream.

A command is either accepted (with everything the renderer needs) or rejected
with a reason a caller can act on. Nothing here raises for bad input.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from shared.attachments import AttachmentIn, AttachmentRef, inline_size, limits_problem, object_id
from shared.commands import SendCommand
from shared.events import (
    Accepted,
    Envelope,
    Event,
    Queued,
    Rejected,
    Scheduled,
    Suppressed,
    event_id_for,
    utcnow,
)
from shared.lanes import is_bulk
from shared.limits import CommandError, load_command
from shared.mailbox import Mailbox
from shared.subjects import MESSAGE_ID_RE
from shared.suppression_rules import Entry

_COMMAND_NS = uuid.UUID("0c6b7e5e-51c4-4c1f-b0a8-7f3f4f1c2a90")
RAW_KEEP = 4096  # bytes of a rejected command kept in its event


@dataclass(frozen=True)
class CommandContext:
    subject: str
    seq: int | None
    stored_at: datetime | None
    default_sender: Mailbox
    templates: frozenset[str]
    entry: int | None = None  # position in a batch
    max_schedule: float = 30 * 86400.0  # JETPOST_MAX_SCHEDULE: how far ahead send_at may be
    max_content: int = 400_000  # JETPOST_MAX_CONTENT_BYTES
    blocked: frozenset[str] = frozenset()  # JETPOST_BLOCKED_EXTENSIONS
    max_attachments: int = 10
    max_attachment_bytes: int = 10_000_000

    def fallback_id(self) -> str:
        """An id for a command that names none: derived from where the command sits in
        MAIL_CMD, so a redelivered command gets the same id again."""
        if self.seq is None:
            return uuid.uuid4().hex
        stamp = self.stored_at.isoformat() if self.stored_at else ""
        return uuid.uuid5(_COMMAND_NS, f"{self.seq}:{stamp}:{self.entry}").hex

    def for_entry(self, index: int) -> CommandContext:
        return replace(self, entry=index)


@dataclass(frozen=True)
class Decision:
    event: Event
    command: SendCommand | None = None
    n: int = 1  # the append's dedup counter (subjects.event_msg_id)

    def _uploaded(self) -> list[AttachmentIn]:
        """The attachments that bring their content (the others name a stored one)."""
        if self.command is None:
            return []
        return [a for a in self.command.attachments if a.content is not None]

    def has_uploads(self) -> bool:
        return bool(self._uploaded())

    def uploads(self) -> list[bytes]:
        """Attachment content to put in the Object Store before the event is appended."""
        return [a.decoded() for a in self._uploaded()]


def describe(exc: ValidationError) -> str:
    """One line per problem: `to.0: invalid address 'x': ...`."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "command"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def reject(ctx: CommandContext, raw: bytes, reason: str, message_id: str | None = None) -> Decision:
    mid = message_id or ctx.fallback_id()
    return Decision(
        Rejected(
            event_id=event_id_for(mid, "rejected"),
            message_id=mid,
            correlation_id=mid,
            reason=reason,
            command_subject=ctx.subject,
            command_seq=ctx.seq,
            raw=raw[:RAW_KEEP].decode("utf-8", errors="replace"),
        )
    )


def _claimed_id(payload: object) -> str | None:
    """The caller's message_id when it is usable as a subject token."""
    if isinstance(payload, dict):
        mid = payload.get("message_id")
        if isinstance(mid, str) and MESSAGE_ID_RE.match(mid):
            return mid
    return None


def load_object(raw: bytes) -> dict[str, Any] | str:
    """The command's JSON object, or why there is none (shared.limits)."""
    try:
        return load_command(raw)
    except CommandError as exc:
        return str(exc)


def decide(raw: bytes, ctx: CommandContext) -> Decision:
    payload = load_object(raw)
    if isinstance(payload, str):
        return reject(ctx, raw, payload)
    return decide_payload(payload, raw, ctx)


def decide_payload(payload: dict[str, Any], raw: bytes, ctx: CommandContext) -> Decision:
    try:
        command = SendCommand.model_validate(payload)
    except ValidationError as exc:
        return reject(ctx, raw, describe(exc), _claimed_id(payload))
    mid = command.message_id or ctx.fallback_id()
    if command.template and command.template not in ctx.templates:
        return reject(ctx, raw, f"template: unknown template {command.template!r}", mid)
    if problem := schedule_problem(command, ctx):
        return reject(ctx, raw, problem, mid)
    if problem := attachments_problem(command, ctx):
        return reject(ctx, raw, problem, mid)
    if command.content_bytes() > ctx.max_content:
        reason = (f"content: {command.content_bytes()} bytes of html, text and vars; at most "
                  f"{ctx.max_content} (JETPOST_MAX_CONTENT_BYTES)")  # fmt: skip
        return reject(ctx, raw, reason, mid)
    return Decision(admit(command, ctx, mid), command)


def attachments_problem(command: SendCommand, ctx: CommandContext) -> str | None:
    if problem := limits_problem(command.attachments, ctx.blocked, ctx.max_attachments):
        return problem
    if (size := inline_size(command.attachments)) > ctx.max_attachment_bytes:
        return (f"attachments: {size} bytes; at most {ctx.max_attachment_bytes}"
                " (JETPOST_MAX_ATTACHMENT_BYTES)")  # fmt: skip
    return None


def refs(command: SendCommand) -> tuple[AttachmentRef, ...]:
    out = []
    for a in command.attachments:
        data = a.decoded() if a.content is not None else None
        out.append(AttachmentRef(
            filename=a.filename, content_type=a.content_type, content_id=a.content_id,
            object=object_id(data) if data is not None else a.object or "",
            size=len(data) if data is not None else None,
        ))  # fmt: skip
    return tuple(out)


def schedule_problem(command: SendCommand, ctx: CommandContext) -> str | None:
    now = ctx.stored_at or utcnow()
    if command.send_at and command.send_at > now + timedelta(seconds=ctx.max_schedule):
        return f"send_at: at most {ctx.max_schedule:.0f} s ahead (JETPOST_MAX_SCHEDULE)"
    return None


def admit(
    command: SendCommand, ctx: CommandContext, message_id: str
) -> Accepted | Scheduled | Queued:
    """`accepted`; or `scheduled` (holding that `accepted`) for a send_at still ahead
    of when the command was stored (a time already past sends now); or `queued` for
    bulk mail (a batch's entries that are not transactional: shared.lanes)."""
    accepted = accept(command, ctx, message_id)
    now = ctx.stored_at or utcnow()
    if command.send_at is None or command.send_at <= now:
        if is_bulk(ctx.subject, command.transactional):
            return Queued(event_id=event_id_for(message_id, "queued"), message_id=message_id,
                          correlation_id=message_id, accepted=accepted)  # fmt: skip
        return accepted
    return Scheduled(
        event_id=event_id_for(message_id, "scheduled"),
        message_id=message_id,
        correlation_id=message_id,
        send_at=command.send_at,
        accepted=accepted,
    )


def accept(command: SendCommand, ctx: CommandContext, message_id: str) -> Accepted:
    return Accepted(
        event_id=event_id_for(message_id, "accepted"),
        message_id=message_id,
        correlation_id=message_id,
        envelope=Envelope(
            sender=command.from_ or ctx.default_sender,
            to=command.to,
            cc=command.cc,
            bcc=command.bcc,
            reply_to=command.reply_to,
        ),
        template=command.template,
        vars=command.vars,
        subject=command.subject,
        html=command.html,
        text=command.text,
        headers=command.headers,
        tags=command.tags,
        idempotency_key=command.idempotency_key,
        command_seq=ctx.seq,
        track=command.track,
        transactional=command.transactional,
        attachments=refs(command),
    )


def admitted(event: Event) -> Accepted | None:
    """The `accepted` a decision carries, itself or held by a `scheduled` or `queued`."""
    if isinstance(event, Scheduled | Queued):
        return event.accepted
    return event if isinstance(event, Accepted) else None


def with_suppressed(event: Accepted | Scheduled | Queued, hits: dict[str, Entry]) -> Event:
    """without_suppressed, also for the `accepted` a `scheduled` or `queued` holds."""
    if isinstance(event, Accepted):
        return without_suppressed(event, hits)
    trimmed = without_suppressed(event.accepted, hits)
    if isinstance(trimmed, Suppressed):
        return trimmed
    return event.model_copy(update={"accepted": trimmed})


def without_suppressed(accepted: Accepted, hits: dict[str, Entry]) -> Accepted | Suppressed:
    """Leave suppressed recipients out; with no `to` recipient left, the message is
    `suppressed` (terminal: nothing is sent)."""
    if not hits:
        return accepted
    envelope = accepted.envelope

    def keep(boxes: tuple[Mailbox, ...]) -> tuple[Mailbox, ...]:
        return tuple(m for m in boxes if m.email.lower() not in hits)

    if not keep(envelope.to):
        reasons = sorted({f"{a}: {e.reason}" for a, e in hits.items()})
        return Suppressed(
            event_id=event_id_for(accepted.message_id, "suppressed"),
            message_id=accepted.message_id,
            correlation_id=accepted.correlation_id,
            causation_id=accepted.causation_id,  # at release: the schedule or the queue
            addresses=tuple(sorted(hits)),
            reason="; ".join(reasons)[:1000],
            envelope=envelope,  # kept: a search by address explains why nothing was sent
            template=accepted.template,
            tags=accepted.tags,
        )
    trimmed = envelope.model_copy(
        update={"to": keep(envelope.to), "cc": keep(envelope.cc), "bcc": keep(envelope.bcc)}
    )
    left_out = tuple(sorted({*accepted.suppressed, *hits}))  # at release: intake's too
    return accepted.model_copy(update={"envelope": trimmed, "suppressed": left_out})
