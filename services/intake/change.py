"""Changing a message already in the log (cancel, reschedule): decide on its history,
then append with a compare-and-set on the message's last event, so the decision
cannot race the scheduler releasing it or the sender's `attempted`.

Used by intake (`mail.cmd.cancel`, `mail.cmd.reschedule`) and by the API, which
answers 200 or 409 from the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nats.js import JetStreamContext

from shared.eventlog import AppendConflict, append, history
from shared.events import Cancelled, Event, Rescheduled
from shared.fold import fold
from shared.scheduling import Due, drop_schedule, publish_schedule

History = list[tuple[int, Event]]
TRIES = 5


@dataclass(frozen=True)
class Change:
    """The outcome of a decision: what to append (None: nothing, it is so already),
    the message's status after it, or why it was refused."""

    status: str
    event: Cancelled | Rescheduled | None = None
    n: int = 1
    refused: str | None = None  # "not-found" or "conflict", with `status` as it is
    detail: str = ""
    schedule: Due | None = None  # published before the event is appended
    drop_schedule: bool = False  # the schedule is removed after the event is appended


def status_of(events: History) -> str:
    return fold(e for _, e in events).status if events else "unknown"


async def apply_change(
    js: JetStreamContext, message_id: str, decide: Callable[[History], Change]
) -> Change:
    for _ in range(TRIES):
        events = await history(js, message_id)
        change = decide(events)
        if change.refused or change.event is None:
            return change
        if change.schedule is not None:
            await publish_schedule(js, change.schedule)
        try:
            await append(js, change.event, change.n, expect_last=events[-1][0] if events else 0)
        except AppendConflict:
            continue  # the message moved on meanwhile: decide again on its new history
        if change.drop_schedule:
            await drop_schedule(js, message_id)
        return change
    raise AppendConflict(f"message {message_id} kept changing; try again")
