"""`mail.cmd.cancel` (and `POST /v1/messages/{id}/cancel`): a message becomes
`cancelled` while nothing has been handed to a provider for it. Pure."""

from __future__ import annotations

from services.intake.change import Change, History, status_of
from shared.events import Cancelled, event_id_for
from shared.scheduling import CancelCommand

# Nothing is with a provider: waiting for its time or in the bulk lane, to be rendered,
# to be sent, or deferred and waiting for its next attempt (whose retries then stop).
CANCELLABLE = frozenset({"scheduled", "queued", "accepted", "rendered", "deferred"})


def decide(command: CancelCommand, events: History) -> Change:
    status = status_of(events)
    if not events:
        return Change(status, refused="not-found", detail=f"no message {command.message_id!r}")
    if status == "cancelled":
        return Change(status)  # cancelling twice changes nothing
    if status not in CANCELLABLE:
        detail = f"message {command.message_id!r} is {status}: too late to cancel"
        return Change(status, refused="conflict", detail=detail)
    cancelled = Cancelled(
        event_id=event_id_for(command.message_id, "cancelled"),
        message_id=command.message_id,
        correlation_id=command.message_id,
        causation_id=events[-1][1].event_id,
        reason=command.reason,
    )
    return Change("cancelled", cancelled, drop_schedule=status == "scheduled")
