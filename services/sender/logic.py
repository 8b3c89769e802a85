"""What an SMTP outcome means for a message: which events to append and whether
JetStream should bring it back later. Pure."""

from __future__ import annotations

import re
from typing import Any

from services.sender.outcome import Outcome, retry_delay
from shared.events import (
    Bounced,
    Deferred,
    Delivered,
    Event,
    Failed,
    Rejected,
    Rendered,
    event_id_for,
)
from shared.settings import Settings

_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")

Planned = tuple[list[tuple[Event, int]], float | None]


def enhanced_status(response: str) -> str | None:
    """The RFC 3463 status (e.g. 5.1.1) a server put in its reply, if any."""
    found = _ENHANCED.search(response)
    return found.group(1) if found else None


def unsendable(message_id: str, attempt: int, exc: BaseException) -> tuple[Event, int]:
    failed = Failed(
        event_id=event_id_for(message_id, "failed"),
        message_id=message_id,
        correlation_id=message_id,
        attempt=attempt,
        reason=f"unsendable: {exc}",
    )
    return failed, 1


def refused(rendered: Rendered, subject: str, reason: str) -> tuple[Event, int]:
    """A mail jetpost will not send as configured (e.g. no DKIM key while required)."""
    mid = rendered.message_id
    rejected = Rejected(
        event_id=event_id_for(mid, "rejected"),
        message_id=mid,
        causation_id=rendered.event_id,
        correlation_id=rendered.correlation_id,
        reason=reason,
        command_subject=subject,
    )
    return rejected, 1


def decide_outcome(
    rendered: Rendered,
    outcome: Outcome,
    attempt: int,
    settings: Settings,
    unrouted_retry: float | None = None,
) -> Planned:
    """Events to append (with their dedup counters), and the redelivery delay when the
    message is to be tried again (None: it is done). `unrouted_retry`: no provider
    could take it (every circuit open): deferred for that long, never failed for it."""
    mid = rendered.message_id
    provider = outcome.provider or "none"
    common: dict[str, Any] = {
        "message_id": mid,
        "causation_id": rendered.event_id,
        "correlation_id": rendered.correlation_id,
        "attempt": attempt,
        "smtp_code": outcome.code,
        "host": outcome.host,
    }
    if outcome.kind == "delivered":
        delivered = Delivered(
            event_id=event_id_for(mid, "delivered"),
            provider=provider,
            response=outcome.response,
            refused=outcome.refused,
            **common,
        )
        return [(delivered, 1)], None
    if outcome.kind == "bounced":
        bounced = Bounced(
            event_id=event_id_for(mid, "bounced"),
            kind="hard",
            provider=provider,
            status=enhanced_status(outcome.response),
            response=outcome.response,
            recipients=tuple(m.email for m in rendered.envelope.recipients),
            **common,
        )
        return [(bounced, 1)], None
    if unrouted_retry is None and attempt >= settings.max_attempts:
        reason = f"gave up after {attempt} attempts: {outcome.response}"
        common.pop("host")
        return [(Failed(event_id=event_id_for(mid, "failed"), reason=reason, **common), 1)], None
    delay = unrouted_retry or retry_delay(attempt, settings.retry_base, settings.retry_max)
    deferred = Deferred(
        event_id=event_id_for(mid, "deferred", attempt),
        provider=provider,
        response=outcome.response,
        retry_in=delay,
        **common,
    )
    return [(deferred, attempt)], delay
