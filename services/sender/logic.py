"""What an SMTP outcome means for a message: which events to append and whether
JetStream should bring it back later. Pure."""

from __future__ import annotations

import re
from typing import Any

from services.sender.outcome import Outcome, retry_delay
from shared.events import Bounced, Deferred, Delivered, Event, Failed, Rendered, event_id_for
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


def decide_outcome(
    rendered: Rendered, outcome: Outcome, attempt: int, provider: str, settings: Settings
) -> Planned:
    """Events to append (with their dedup counters), and the redelivery delay when the
    message is to be tried again (None: it is done)."""
    mid = rendered.message_id
    common: dict[str, Any] = {
        "message_id": mid,
        "causation_id": rendered.event_id,
        "correlation_id": rendered.correlation_id,
        "attempt": attempt,
        "smtp_code": outcome.code,
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
    if attempt >= settings.max_attempts:
        reason = f"gave up after {attempt} attempts: {outcome.response}"
        return [(Failed(event_id=event_id_for(mid, "failed"), reason=reason, **common), 1)], None
    delay = retry_delay(attempt, settings.retry_base, settings.retry_max)
    deferred = Deferred(
        event_id=event_id_for(mid, "deferred", attempt),
        provider=provider,
        response=outcome.response,
        retry_in=delay,
        **common,
    )
    return [(deferred, attempt)], delay
