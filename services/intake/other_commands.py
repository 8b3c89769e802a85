"""Decisions for the commands besides `send`: batches, resends and suppression changes.
Pure, like logic.py."""

from __future__ import annotations

import json

from pydantic import ValidationError

from services.intake.logic import (
    CommandContext,
    Decision,
    decide_payload,
    describe,
    load_object,
    reject,
)
from shared.commands import ResendCommand, SendBatchCommand, SuppressCommand
from shared.events import (
    Accepted,
    Resent,
    SuppressionAdded,
    SuppressionRemoved,
    event_id_for,
    utcnow,
)
from shared.subjects import suppression_aggregate


def decide_batch(raw: bytes, ctx: CommandContext) -> list[Decision]:
    """One decision per entry; a batch that is not a batch is one rejection."""
    payload = load_object(raw)
    if isinstance(payload, str):
        return [reject(ctx, raw, payload)]
    try:
        batch = SendBatchCommand.model_validate(payload)
    except ValidationError as exc:
        return [reject(ctx, raw, describe(exc))]
    decisions = []
    for index, entry in enumerate(batch.expand()):
        entry_raw = json.dumps(entry).encode()
        if not isinstance(entry, dict):
            decisions.append(reject(ctx.for_entry(index), entry_raw, "an entry is a JSON object"))
            continue
        decisions.append(decide_payload(entry, entry_raw, ctx.for_entry(index)))
    return decisions


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
