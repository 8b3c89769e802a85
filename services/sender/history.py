"""What the log already says about a message, read before EVERY send.

A nats-server crash can roll a consumer's state back: a message already delivered
and acked comes back as a first delivery (num_delivered == 1). So the sender never
trusts the delivery count: one direct get of the last event on `mail.evt.<id>.*`
tells whether the message is done, and numbers the next attempt after the last one
recorded, so every real attempt has its own events (issue 14, item 2).

On a first delivery the read is skipped: the delivered `rendered` event is taken as
the last, and the `attempted` append's compare-and-set on its sequence checks that
against the log itself. A message that has moved on (a rolled-back consumer handing
out a delivered mail again, a cancel) makes that append conflict, so nothing is sent,
and its redelivery reads the log. The usual mail saves one direct get.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from shared.events import Event, field_of, parse_event
from shared.inflight import direct_last
from shared.subjects import EVT_STREAM, message_filter

# After any of these the message is not to be sent (again).
DONE = frozenset({
    "delivered", "bounced", "failed", "cancelled", "rejected", "suppressed", "complained",
    "opened", "clicked", "unsubscribed", "resent", "render_failed",
})  # fmt: skip


async def last_event(
    js: JetStreamContext,
    message_id: str,
    known: tuple[int, Event] | None = None,
    first: bool = False,
) -> tuple[int, Event | None]:
    """The message's last event and its stream sequence ((0, None): it has none). The
    sequence guards the `attempted` append (compare-and-set), so a cancel appended
    since this read makes that append conflict. `known`: an event already parsed and
    its sequence (the delivered one, usually the last): not parsed again. Direct gets
    of a replicated stream may be answered by a replica a little behind; an answer
    older than the delivered event is such a one, and the delivered event is taken as
    the last (the compare-and-set then checks it against the leader). `first`: a first
    delivery, whose `known` is taken as the last without a read (above)."""
    if first and known is not None:
        return known
    try:
        stored = await direct_last(js, EVT_STREAM, message_filter(message_id))
    except NotFoundError:
        return known if known is not None else (0, None)
    seq = stored.seq
    if known is not None and seq <= known[0]:
        return known
    try:
        return seq, parse_event(stored.data or b"")
    except (ValidationError, ValueError):
        return seq, None  # written by a newer version: decide from the delivery


def is_done(last: Event | None) -> bool:
    return last is not None and last.type in DONE


def next_attempt(last: Event | None) -> int:
    """1, or one past the last attempt the log records. Pure."""
    attempt = field_of(last, "attempt")
    return attempt + 1 if isinstance(attempt, int) else 1
