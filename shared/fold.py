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

from collections.abc import Iterable
from datetime import datetime

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
    Rejected,
    Rendered,
    RenderFailed,
    Resent,
    Suppressed,
    Unsubscribed,
)

# Higher wins; equal ranks: the later event wins.
STATUS_RANK = {
    "unknown": 0,
    "accepted": 1,
    "scheduled": 1,
    "rendered": 2,
    "sending": 3,
    "deferred": 3,
    "delivered": 4,
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


def _status(state: MessageState, event: Event) -> str:
    new = STATUS_OF.get(event.type)
    if new is None:
        return state.status
    if STATUS_RANK[new] > STATUS_RANK[state.status]:
        return new
    if (
        STATUS_RANK[new] == STATUS_RANK[state.status]
        and state.last_event_at is not None
        and event.occurred_at >= state.last_event_at
    ):
        return new
    return state.status


def _earliest(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at < current else current


def apply(state: MessageState, event: Event) -> MessageState:
    """One event onto a state; pure."""
    at = event.occurred_at
    changes: dict[str, object] = {
        "status": _status(state, event),
        "created_at": _earliest(state.created_at, at),
        "updated_at": max(state.updated_at or at, at),
        "last_event_at": max(state.last_event_at or at, at),
    }
    match event:
        case Accepted() | Rendered():
            envelope = event.envelope
            changes |= {
                "sender": str(envelope.sender),
                "to": tuple(m.email for m in envelope.to),
                "cc": tuple(m.email for m in envelope.cc),
                "bcc": tuple(m.email for m in envelope.bcc),
                "tags": event.tags,
                "template": event.template,
            }
            if isinstance(event, Accepted):
                changes["accepted_at"] = _earliest(state.accepted_at, at)
                if event.subject is not None and state.subject is None:
                    changes["subject"] = event.subject
            else:
                changes |= {
                    "subject": event.subject,
                    "template_version": event.template_version,
                    "rendered_at": _earliest(state.rendered_at, at),
                }
        case Attempted():
            changes["attempts"] = max(state.attempts, event.attempt)
        case Delivered():
            changes |= {"delivered_at": _earliest(state.delivered_at, at),
                        "last_smtp_code": event.smtp_code}  # fmt: skip
        case Deferred():
            changes |= {"last_smtp_code": event.smtp_code, "last_error": event.response}
        case Bounced():
            changes |= {
                "bounced_at": _earliest(state.bounced_at, at),
                "last_smtp_code": event.smtp_code,
                "last_error": event.response,
            }
        case Failed():
            changes |= {"failed_at": _earliest(state.failed_at, at), "last_error": event.reason}
            if event.smtp_code is not None:
                changes["last_smtp_code"] = event.smtp_code
        case Rejected() | RenderFailed():
            changes["last_error"] = event.reason
        case Suppressed():
            changes["last_error"] = event.reason
        case Opened():
            changes |= {"opens": state.opens + 1,
                        "first_opened_at": _earliest(state.first_opened_at, at)}  # fmt: skip
        case Clicked():
            changes |= {"clicks": state.clicks + 1,
                        "first_clicked_at": _earliest(state.first_clicked_at, at)}  # fmt: skip
        case Complained():
            changes["complained_at"] = _earliest(state.complained_at, at)
        case Unsubscribed():
            changes["unsubscribed_at"] = _earliest(state.unsubscribed_at, at)
        case Resent():
            changes["resent_as"] = (*state.resent_as, event.new_message_id)
    return state.model_copy(update=changes)


def fold(events: Iterable[Event], state: MessageState | None = None) -> MessageState:
    """Fold events (of one message, in log order) onto `state` or a fresh one."""
    for event in events:
        if state is None:
            state = MessageState(message_id=event.message_id)
        state = apply(state, event)
    if state is None:
        raise ValueError("fold of no events and no state")
    return state
