"""Reading MAIL_EVT in tests: wait for an event without sleeping, read a history."""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from shared.events import Event, parse_event
from shared.subjects import EVT_STREAM, event_subject, message_filter


async def read_all(js: JetStreamContext, subject: str = "mail.evt.>") -> list[Event]:
    """Every event currently stored on `subject`, in stream order."""
    info = await js.stream_info(EVT_STREAM, subjects_filter=subject)
    total = sum((info.state.subjects or {}).values()) if info.state.subjects else 0
    if total == 0:
        return []
    sub = await js.subscribe(
        subject, stream=EVT_STREAM, ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )  # fmt: skip
    try:
        return [parse_event((await sub.next_msg(timeout=5)).data) for _ in range(total)]
    finally:
        await sub.unsubscribe()


async def history(js: JetStreamContext, message_id: str) -> list[Event]:
    return await read_all(js, message_filter(message_id))


async def types_of(js: JetStreamContext, message_id: str) -> list[str]:
    return [e.type for e in await history(js, message_id)]


async def wait_for_event(
    js: JetStreamContext, message_id: str, event_type: str, timeout: float = 20.0
) -> Event:
    """The first `event_type` event of a message, waiting for it to be appended."""
    sub = await js.subscribe(
        event_subject(message_id, event_type), stream=EVT_STREAM, ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )  # fmt: skip
    try:
        return parse_event((await sub.next_msg(timeout=timeout)).data)
    finally:
        await sub.unsubscribe()


async def wait_for_any(
    js: JetStreamContext, message_id: str, event_types: tuple[str, ...], timeout: float = 20.0
) -> Event:
    """The first of several event types to appear for a message."""
    waits = [asyncio.ensure_future(wait_for_event(js, message_id, t, timeout)) for t in event_types]
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        return next(iter(done)).result()
    finally:
        for w in waits:
            w.cancel()


async def wait_for_count(
    js: JetStreamContext, n: int, subject: str = "mail.evt.>", timeout: float = 60.0
) -> None:
    """Wait until `subject` has had n events, counting them as they are delivered."""
    sub = await js.subscribe(subject, stream=EVT_STREAM, ordered_consumer=True,
                             config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))  # fmt: skip
    try:
        async with asyncio.timeout(timeout):
            for _ in range(n):
                await sub.next_msg(timeout=timeout)
    finally:
        await sub.unsubscribe()
