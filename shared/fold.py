"""A message's state as a pure fold over its events.

`fold(events)` is the one definition of "what is this message's status": the
messages projection applies it batch by batch, the API applies it to the log for
`?as_of=` reads, and the tests check the two agree.

Events can arrive late and out of order (a webhook's bounce after the open it
caused, a DSN days later): status only moves up the ranking below, so an open
recorded after a bounce does not resurrect the message, and a stale `deferred`
does not undo `delivered`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.events import (
    Accepted,
    Attempted,
    Bounced,
    Clicked,
    Complained,
    Deferred,
    Delivered,
    Event,
    Failed,
    Opened,
    Queued,
    Rejected,
    Rendered,
    RenderFailed,
    Rescheduled,
    Resent,
    Scheduled,
    Suppressed,
    Unsubscribed,
)

# Higher wins; equal ranks: the later event wins.
STATUS_RANK = {
    "unknown": -1,
    "scheduled": 0,  # below accepted: once released, a message never reads as scheduled again
    "queued": 0,
    "accepted": 1,
    "rendered": 2,
    "sending": 3,
    "deferred": 3,
    "delivered": 4,
    "soft_bounced": 4,  # a transient bounce report: the latest of it and delivered shows
    "failed": 5,
    "cancelled": 5,
    "suppressed": 5,
    "rejected": 5,
    "render_failed": 5,
    "bounced": 6,
    "complained": 7,
}
STATUS_OF = {
    "accepted": "accepted",
    "scheduled": "scheduled",
    "rescheduled": "scheduled",
    "queued": "queued",
    "rendered": "rendered",
    "attempted": "sending",
    "deferred": "deferred",
    "delivered": "delivered",
    "bounced": "bounced",
    "failed": "failed",
    "cancelled": "cancelled",
    "suppressed": "suppressed",
    "rejected": "rejected",
    "render_failed": "render_failed",
    "complained": "complained",
}
TERMINAL = frozenset(s for s, rank in STATUS_RANK.items() if rank >= 4)


class MessageState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: str
    status: str = "unknown"
    created_at: datetime | None = None
    updated_at: datetime | None = None
    sender: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    subject: str | None = None
    template: str | None = None
    template_version: str | None = None
    tags: tuple[str, ...] = ()
    attempts: int = 0
    last_smtp_code: int | None = None
    last_error: str | None = None
    accepted_at: datetime | None = None
    rendered_at: datetime | None = None
    delivered_at: datetime | None = None
    bounced_at: datetime | None = None
    failed_at: datetime | None = None
    opens: int = 0
    first_opened_at: datetime | None = None
    clicks: int = 0
    first_clicked_at: datetime | None = None
    complained_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    resent_as: tuple[str, ...] = ()
    last_event_at: datetime | None = None
    send_at: datetime | None = None  # a scheduled send's time


def _status(current: str, last_at: datetime | None, event: Event) -> str:
    new = STATUS_OF.get(event.type)
    if event.type == "bounced" and event.kind == "soft":
        new = "soft_bounced"
    if new is None:
        return current
    rank, held = STATUS_RANK[new], STATUS_RANK[current]
    if rank > held or (rank == held and last_at is not None and event.occurred_at >= last_at):
        return new
    return current


def _earliest(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at < current else current


def _envelope(s: dict[str, Any], event: Accepted | Rendered | Suppressed) -> None:
    envelope = event.envelope
    if envelope is None:  # a v1 `suppressed`: only the suppressed addresses are known
        if event.type == "suppressed" and not s["to"]:
            s["to"] = event.addresses
        return
    s["sender"] = str(envelope.sender)
    # (lists turned tuples: a generator costs more than the list, and cc and bcc are
    # most often empty)
    s["to"] = tuple([m.email for m in envelope.to])
    s["cc"] = tuple([m.email for m in envelope.cc]) if envelope.cc else ()
    s["bcc"] = tuple([m.email for m in envelope.bcc]) if envelope.bcc else ()
    s["tags"] = event.tags
    s["template"] = event.template


# What each type of event does to a state's fields, besides status and times. By
# `event.type`, not by class: the projections fold msgspec mirrors of the models
# (projections.decode) as well as the models themselves.
def _accepted(s: dict[str, Any], event: Accepted, at: datetime) -> None:
    _envelope(s, event)
    s["accepted_at"] = _earliest(s["accepted_at"], at)
    if event.subject is not None and s["subject"] is None:
        s["subject"] = event.subject


def _held(s: dict[str, Any], event: Scheduled | Queued, at: datetime) -> None:
    _envelope(s, event.accepted)
    if event.type == "scheduled":
        s["send_at"] = event.send_at
    if event.accepted.subject is not None and s["subject"] is None:
        s["subject"] = event.accepted.subject


def _rescheduled(s: dict[str, Any], event: Rescheduled, at: datetime) -> None:
    s["send_at"] = event.send_at


def _rendered(s: dict[str, Any], event: Rendered, at: datetime) -> None:
    _envelope(s, event)
    s["subject"] = event.subject
    s["template_version"] = event.template_version
    s["rendered_at"] = _earliest(s["rendered_at"], at)


def _attempted(s: dict[str, Any], event: Attempted, at: datetime) -> None:
    s["attempts"] = max(s["attempts"], event.attempt)


def _delivered(s: dict[str, Any], event: Delivered, at: datetime) -> None:
    s["delivered_at"] = _earliest(s["delivered_at"], at)
    s["last_smtp_code"] = event.smtp_code


def _deferred(s: dict[str, Any], event: Deferred, at: datetime) -> None:
    s["last_smtp_code"], s["last_error"] = event.smtp_code, event.response


def _bounced(s: dict[str, Any], event: Bounced, at: datetime) -> None:
    s["bounced_at"] = _earliest(s["bounced_at"], at)
    s["last_smtp_code"], s["last_error"] = event.smtp_code, event.response


def _failed(s: dict[str, Any], event: Failed, at: datetime) -> None:
    s["failed_at"] = _earliest(s["failed_at"], at)
    s["last_error"] = event.reason
    if event.smtp_code is not None:
        s["last_smtp_code"] = event.smtp_code


def _suppressed(s: dict[str, Any], event: Suppressed, at: datetime) -> None:
    _envelope(s, event)
    s["last_error"] = event.reason


def _refused(s: dict[str, Any], event: Rejected | RenderFailed, at: datetime) -> None:
    s["last_error"] = event.reason


def _opened(s: dict[str, Any], event: Opened, at: datetime) -> None:
    s["opens"] += 1
    s["first_opened_at"] = _earliest(s["first_opened_at"], at)


def _clicked(s: dict[str, Any], event: Clicked, at: datetime) -> None:
    s["clicks"] += 1
    s["first_clicked_at"] = _earliest(s["first_clicked_at"], at)


def _complained(s: dict[str, Any], event: Complained, at: datetime) -> None:
    s["complained_at"] = _earliest(s["complained_at"], at)


def _unsubscribed(s: dict[str, Any], event: Unsubscribed, at: datetime) -> None:
    s["unsubscribed_at"] = _earliest(s["unsubscribed_at"], at)


def _resent(s: dict[str, Any], event: Resent, at: datetime) -> None:
    s["resent_as"] = (*s["resent_as"], event.new_message_id)


STEPS: dict[str, Callable[[dict[str, Any], Any, datetime], None]] = {
    "accepted": _accepted, "scheduled": _held, "queued": _held, "rescheduled": _rescheduled,
    "rendered": _rendered, "attempted": _attempted, "delivered": _delivered,
    "deferred": _deferred, "bounced": _bounced, "failed": _failed, "suppressed": _suppressed,
    "rejected": _refused, "render_failed": _refused, "opened": _opened, "clicked": _clicked,
    "complained": _complained, "unsubscribed": _unsubscribed, "resent": _resent,
}  # fmt: skip


def _step(s: dict[str, Any], event: Event) -> None:
    """One event onto a state's fields, in place (fold owns the dict)."""
    at = event.occurred_at
    s["status"] = _status(s["status"], s["last_event_at"], event)
    s["created_at"] = _earliest(s["created_at"], at)
    s["updated_at"] = at if s["updated_at"] is None or at > s["updated_at"] else s["updated_at"]
    s["last_event_at"] = max(s["last_event_at"] or at, at)
    step = STEPS.get(event.type)
    if step is not None:
        step(s, event, at)


# A fresh state's fields (message_id aside): the defaults, all immutable.
_FRESH = MessageState(message_id="").__dict__


def fold_fields(events: Iterable[Event], fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """`fold` on a plain dict of MessageState's fields, which it updates in place (or
    starts fresh): the projection's path, where building a model per message would cost
    more than the fold itself."""
    for event in events:
        if fields is None:
            fields = {**_FRESH, "message_id": event.message_id}
        _step(fields, event)
    if fields is None:
        raise ValueError("fold of no events and no state")
    return fields


def fold(events: Iterable[Event], state: MessageState | None = None) -> MessageState:
    """Fold events (of one message, in log order) onto `state` or a fresh one. Pure:
    the fields are worked on in a private dict, and one new state is made at the end."""
    fields = fold_fields(events, dict(state.__dict__) if state is not None else None)
    return MessageState.model_construct(**fields)


def apply(state: MessageState, event: Event) -> MessageState:
    """One event onto a state."""
    return fold((event,), state)
