"""What a schedule falling due means for its message. Pure.

The due message names its revision (the event id of the `scheduled` or
`rescheduled` it was published for). Release only the current revision of a
message that is still scheduled; a revision the log does not have yet is waited for
(the schedule is published before its event is appended).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.events import Accepted, Event, Rescheduled, Scheduled
from shared.fold import fold
from shared.scheduling import Due


@dataclass(frozen=True)
class Release:
    accepted: Accepted


@dataclass(frozen=True)
class Drop:
    why: str


@dataclass(frozen=True)
class Wait:
    why: str


def on_due(events: list[Event], due: Due, now: datetime) -> Release | Drop | Wait:
    moves = [e for e in events if isinstance(e, Scheduled | Rescheduled)]
    revisions = [e.event_id for e in moves]
    if due.revision not in revisions:
        return Wait(f"revision {due.revision} is not in the log yet")
    status = fold(events).status
    if status != "scheduled" or any(isinstance(e, Accepted) for e in events):
        return Drop(f"the message is {status}")
    if due.revision != revisions[-1]:
        return Drop("a later reschedule replaced this schedule")
    first = moves[0]
    assert isinstance(first, Scheduled)
    accepted = first.accepted.model_copy(update={"occurred_at": now, "causation_id": due.revision})
    return Release(accepted)
