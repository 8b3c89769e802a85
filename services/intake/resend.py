"""`mail.cmd.resend`: a new message from an earlier one's content. Pure."""

from __future__ import annotations

from pydantic import ValidationError

from services.intake.logic import CommandContext, Decision, describe, load_object, reject
from shared.commands import ResendCommand
from shared.events import Accepted, Resent, event_id_for, utcnow


def parse_resend(raw: bytes, ctx: CommandContext) -> ResendCommand | Decision:
    payload = load_object(raw)
    if isinstance(payload, str):
        return reject(ctx, raw, payload)
    try:
        return ResendCommand.model_validate(payload)
    except ValidationError as exc:
        return reject(ctx, raw, describe(exc))


def resend(original: Accepted, command: ResendCommand, ctx: CommandContext) -> list[Decision]:
    """The new message (the original's content, linked to it) and the original's `resent`."""
    new_id = command.new_message_id
    accepted = original.model_copy(
        update={
            "event_id": event_id_for(new_id, "accepted"),
            "message_id": new_id,
            "occurred_at": ctx.stored_at or utcnow(),
            "causation_id": original.event_id,
            "correlation_id": new_id,
            "idempotency_key": None,
            "command_seq": ctx.seq,
            "resend_of": original.message_id,
            "rerender": command.rerender,
        }
    )
    n = ctx.seq or 1
    resent = Resent(
        event_id=event_id_for(original.message_id, "resent", n),
        message_id=original.message_id,
        correlation_id=original.correlation_id,
        new_message_id=new_id,
    )
    return [Decision(accepted), Decision(resent, n=n)]
