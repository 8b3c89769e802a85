"""`mail.cmd.reschedule` (and `PATCH /v1/messages/{id}`): a scheduled message gets a
new time; its schedule is replaced. Pure."""

from __future__ import annotations

from services.intake.change import Change, History, status_of
from shared.events import Rescheduled, Scheduled, event_id_for
from shared.scheduling import Due, RescheduleCommand


def decide(command: RescheduleCommand, events: History) -> Change:
    mid = command.message_id
    status = status_of(events)
    if not events:
        return Change(status, refused="not-found", detail=f"no message {mid!r}")
    if status != "scheduled":
        detail = f"message {mid!r} is {status}: only a scheduled message can be rescheduled"
        return Change(status, refused="conflict", detail=detail)
    moves = [e for _, e in events if isinstance(e, Scheduled | Rescheduled)]
    if moves[-1].send_at == command.send_at:
        return Change(status)  # already so (a repeated command)
    n = len(moves)  # the first move is `scheduled`: this one is rescheduled #n
    event = Rescheduled(
        event_id=event_id_for(mid, "rescheduled", n),
        message_id=mid,
        correlation_id=mid,
        causation_id=events[-1][1].event_id,
        send_at=command.send_at,
    )
    due = Due(message_id=mid, revision=event.event_id, send_at=command.send_at)
    return Change(status, event, n=n, schedule=due)
