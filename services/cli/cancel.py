"""`jetpost cancel ID`: cancel a message not yet handed to a provider, straight on
the log (the same decision and compare-and-set as the API's cancel)."""

from __future__ import annotations

from services.intake import cancel
from services.intake.change import Change, apply_change
from shared.nats_connect import NatsTarget, connect
from shared.scheduling import CancelCommand


async def cancel_message(target: NatsTarget, message_id: str, reason: str = "") -> Change:
    command = CancelCommand(message_id=message_id, reason=reason)
    nc = await connect(target, name="jetpost-cli")
    try:
        return await apply_change(nc.jetstream(), message_id, lambda h: cancel.decide(command, h))
    finally:
        await nc.close()
