"""Hypothesis strategies: random, valid event sequences for a few messages, with
times out of order, the way late webhooks and DSNs arrive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from shared.events import (
    Accepted,
    Attempted,
    Bounced,
    Clicked,
    Complained,
    Deferred,
    Delivered,
    Envelope,
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
from shared.mailbox import Mailbox

T0 = datetime(2026, 11, 1, tzinfo=UTC)
ENVELOPE = Envelope(
    sender=Mailbox(email="noreply@example.com"),
    to=(Mailbox(email="a@example.com"), Mailbox(email="b@other.org")),
    cc=(Mailbox(email="c@example.com"),),
)

BUILDERS: dict[str, Any] = {
    "accepted": lambda c: Accepted(envelope=ENVELOPE, template="welcome", tags=("t",), **c),
    "rejected": lambda c: Rejected(reason="bad", command_subject="mail.cmd.send", **c),
    "suppressed": lambda c: Suppressed(addresses=("a@example.com",), reason="listed", **c),
    "rendered": lambda c: Rendered(envelope=ENVELOPE, subject="Hi", text="t", template="welcome",
                                   template_version="v1", tags=("t",), **c),
    "render_failed": lambda c: RenderFailed(reason="missing", missing_variable="name", **c),
    "attempted": lambda c: Attempted(attempt=c.pop("n"), provider="smtp", **c),
    "delivered": lambda c: Delivered(attempt=c.pop("n"), provider="smtp", smtp_code=250, **c),
    "deferred": lambda c: Deferred(attempt=c.pop("n"), provider="smtp", smtp_code=451,
                                   response="later", retry_in=30, **c),
    "bounced": lambda c: Bounced(kind="hard", smtp_code=550, response="no such user", **c),
    "failed": lambda c: Failed(attempt=c.pop("n"), reason="gave up", **c),
    "complained": lambda c: Complained(recipient="a@example.com", **c),
    "opened": lambda c: Opened(**c),
    "clicked": lambda c: Clicked(url="https://example.com/x", **c),
    "unsubscribed": lambda c: Unsubscribed(recipient="a@example.com", **c),
    "resent": lambda c: Resent(new_message_id="other", **c),
}  # fmt: skip
NEEDS_N = {"attempted", "delivered", "deferred", "failed"}


@st.composite
def event_for(draw: st.DrawFn, message_id: str, index: int) -> Event:
    kind = draw(st.sampled_from(sorted(BUILDERS)))
    common: dict[str, Any] = {
        "event_id": f"{message_id}-{index}",
        "message_id": message_id,
        "occurred_at": T0 + timedelta(seconds=draw(st.integers(0, 3 * 86400))),
    }
    if kind in NEEDS_N:
        common["n"] = draw(st.integers(1, 5))
    event: Event = BUILDERS[kind](common)
    return event


@st.composite
def histories(draw: st.DrawFn, max_messages: int = 3, max_events: int = 12) -> list[Event]:
    """Events of up to `max_messages` messages, interleaved as a stream would hold them."""
    events: list[Event] = []
    for m in range(draw(st.integers(1, max_messages))):
        count = draw(st.integers(1, max_events))
        events += [draw(event_for(f"m{m}", i)) for i in range(count)]
    return draw(st.permutations(events))
