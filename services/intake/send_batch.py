"""`mail.cmd.send_batch`: one decision per entry. Pure, like logic.py."""

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
from shared.commands import SendBatchCommand


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
