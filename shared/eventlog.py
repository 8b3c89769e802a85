"""Appending events to MAIL_EVT and asking what a message already has.

Every append carries a deterministic Nats-Msg-Id (`<message_id>:<type>:<n>`), so a
handler that crashed after appending and before acking appends nothing new when it
runs again within the duplicate window; past the window, handlers check
`has_event` on redelivery instead.

Each append also carries the trace context (`traceparent`) of the handler that made
it, so the service that consumes the event continues the same trace; feedback that
comes from outside (a DSN, a webhook, a tracking hit) joins the trace of the message's
first event. Every stored event is counted (shared.telemetry.metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import BadRequestError, NotFoundError
from pydantic import ValidationError

from shared import inflight
from shared.events import Event, parse_event
from shared.subjects import EVT_STREAM, event_msg_id, event_subject, message_filter
from shared.telemetry import tracing
from shared.telemetry.metrics import observe_appended

log = logging.getLogger("jetpost.eventlog")
NO_SPAN = contextlib.nullcontext()  # appends while tracing is off
WRONG_LAST_SEQUENCE = 10071  # JetStream: the expected last sequence did not match
# Appended from outside any message's trace: parented on the message's own context.
FEEDBACK_TYPES = frozenset({"bounced", "complained", "opened", "clicked", "unsubscribed",
                            "delivered"})  # fmt: skip


class AppendRefused(Exception):
    """The server refused the event itself (too large, invalid): retrying cannot help.
    Deliberately not a nats error, so handlers' transient-error paths do not retry it."""


class AppendConflict(Exception):
    """Another event of the message was appended since `expect_last`: decide again."""


async def append(
    js: JetStreamContext, event: Event, n: int = 1, *, expect_last: int | None = None
) -> PubAck:
    """Append one event and wait for the stream's ack (durably stored). With
    `expect_last`, only if the message's last event is still at that sequence (0: it
    has none), so a decision made on its history cannot race another one."""
    headers = {"Nats-Msg-Id": event_msg_id(event.message_id, event.type, n)}
    if expect_last is not None:
        headers.update(expect_last_headers(message_filter(event.message_id), expect_last))
    subject, payload = event_subject(event.message_id, event.type), event.model_dump_json().encode()
    try:
        span: contextlib.AbstractContextManager[None] = NO_SPAN
        if tracing.enabled():
            parent = None
            if event.type in FEEDBACK_TYPES and not _in_message_trace():
                parent = await message_context(js, event.message_id)
            span = tracing.producer_span(f"append {event.type}", headers, parent,
                                         **{"jetpost.message_id": event.message_id})  # fmt: skip
        with span:
            ack = await inflight.publish(js, subject, payload, EVT_STREAM, headers)
    except BadRequestError as exc:
        if exc.err_code == WRONG_LAST_SEQUENCE:
            raise AppendConflict(f"{event.type} for {event.message_id}: {exc!r}") from exc
        raise AppendRefused(f"{event.type} for {event.message_id}: {exc!r}") from exc
    except nats.errors.MaxPayloadError as exc:
        raise AppendRefused(f"{event.type} for {event.message_id}: {exc!r}") from exc
    observe_appended(event)
    return ack


def expect_last_headers(subjects: str, seq: int) -> dict[str, str]:
    """An append's compare-and-set: stored only if the last message on `subjects` (a
    filter) is still at `seq` (0: there is none)."""
    return {
        "Nats-Expected-Last-Subject-Sequence": str(seq),
        "Nats-Expected-Last-Subject-Sequence-Subject": subjects,
    }


def _in_message_trace() -> bool:
    """Inside a consumed message's span (the sender's, say): its trace is the message's."""
    span = tracing.current_span()
    kind = getattr(span, "kind", None)  # SDK spans have one; the no-op span does not
    return bool(span.get_span_context().is_valid and kind is not None and kind.name == "CONSUMER")


async def message_context(js: JetStreamContext, message_id: str) -> tracing.Context | None:
    """The trace context the message's `accepted` event was appended in, if any."""
    try:
        stored = await js.get_last_msg(EVT_STREAM, event_subject(message_id, "accepted"),
                                       direct=True)  # fmt: skip
    except (NotFoundError, nats.errors.Error, TimeoutError, OSError):
        return None
    return tracing.context_from(stored.headers)


async def _exists(js: JetStreamContext, subject: str) -> bool:
    try:
        await inflight.direct_last(js, EVT_STREAM, subject)
    except NotFoundError:
        return False
    return True


async def has_event(js: JetStreamContext, message_id: str, event_type: str) -> bool:
    return await _exists(js, event_subject(message_id, event_type))


async def has_any_event(js: JetStreamContext, message_id: str) -> bool:
    """Whether the message has any event at all (one direct get on its subjects)."""
    return await _exists(js, message_filter(message_id))


async def first_of(js: JetStreamContext, message_id: str, event_types: Sequence[str]) -> str | None:
    """The first of `event_types` the message already has (checked together), or None."""
    found = await asyncio.gather(*(has_event(js, message_id, t) for t in event_types))
    return next((t for t, ok in zip(event_types, found, strict=True) if ok), None)


async def last_event(js: JetStreamContext, message_id: str, event_type: str) -> Event | None:
    """The message's latest event of a type, read straight from the log; None when it
    has none (or it cannot be read by this version)."""
    try:
        stored = await inflight.direct_last(js, EVT_STREAM, event_subject(message_id, event_type))
        return parse_event(stored.data or b"")
    except (NotFoundError, ValidationError, ValueError):
        return None


async def is_cancelled(js: JetStreamContext, message_id: str) -> bool:
    """Whether the message was cancelled: a sender asks right before handing a mail to
    a provider (after appending `attempted`, which a cancel cannot pass)."""
    return await has_event(js, message_id, "cancelled")


async def history(
    js: JetStreamContext, message_id: str, limit: int = 10_000
) -> list[tuple[int, Event]]:
    """The message's events with their stream sequences, in log order (direct gets)."""
    events: list[tuple[int, Event]] = []
    seq = 1
    while len(events) < limit:
        try:
            raw = await js.get_msg(
                EVT_STREAM, seq=seq, subject=message_filter(message_id), direct=True, next=True
            )
        except NotFoundError:
            break
        seq = int(raw.seq or seq)
        try:
            events.append((seq, parse_event(raw.data or b"")))
        except (ValidationError, ValueError) as exc:  # the projections record it
            log.warning("%s: event seq=%d cannot be read; left out: %s",
                        message_id, seq, str(exc)[:300])  # fmt: skip
        seq += 1
    return events
