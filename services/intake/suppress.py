"""`mail.cmd.suppress` / `mail.cmd.unsuppress`: manual suppression changes. Pure."""

from __future__ import annotations

from pydantic import ValidationError

from services.intake.logic import CommandContext, Decision, describe, load_object, reject
from shared.commands import SuppressCommand
from shared.events import SuppressionAdded, SuppressionRemoved, event_id_for
from shared.subjects import suppression_aggregate


def decide_suppression(raw: bytes, ctx: CommandContext, *, remove: bool) -> Decision:
    payload = load_object(raw)
    if isinstance(payload, str):
        return reject(ctx, raw, payload)
    try:
        command = SuppressCommand.model_validate(payload)
    except ValidationError as exc:
        return reject(ctx, raw, describe(exc))
    aggregate = suppression_aggregate(command.address, command.scope)
    n = ctx.seq or 1  # every change is its own event
    if remove:
        event: SuppressionAdded | SuppressionRemoved = SuppressionRemoved(
            event_id=event_id_for(aggregate, "suppression_removed", n), message_id=aggregate,
            address=command.address, scope=command.scope, reason=command.reason,
            command_seq=ctx.seq,
        )  # fmt: skip
    else:
        event = SuppressionAdded(
            event_id=event_id_for(aggregate, "suppression_added", n), message_id=aggregate,
            address=command.address, scope=command.scope, reason=command.reason,
            source=command.source, cause_message_id=command.cause_message_id,
            command_seq=ctx.seq,
        )  # fmt: skip
    return Decision(event, n=n)
