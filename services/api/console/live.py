"""Live updates for the message list: Server-Sent Events fed by a core NATS
subscription on `mail.evt.*.*`, so the page hears of every event as it is appended to
the log. The stream ends after a while (the browser reconnects), so a server that
stops is never held open by a tab."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from litestar import get
from litestar.response import ServerSentEvent, ServerSentEventMessage

from services.api.console.pages import need
from services.api.console.session import Rt, Session
from services.api.runtime import Runtime
from shared.subjects import event_filter

STREAM_SECONDS = 60.0
PING_SECONDS = 15.0


async def _events(rt: Runtime) -> AsyncIterator[ServerSentEventMessage]:
    queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1000)

    async def on_event(msg: object) -> None:
        subject = str(getattr(msg, "subject", ""))
        _, _, message_id, event_type = [*subject.split("."), "", "", ""][:4]
        with contextlib.suppress(asyncio.QueueFull):  # a slow tab loses updates, not memory
            queue.put_nowait(json.dumps({"message_id": message_id, "type": event_type}))

    sub = await rt.bus.nc.subscribe(event_filter("*"), cb=on_event)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STREAM_SECONDS
    try:
        yield ServerSentEventMessage(comment="live", retry=1000)
        while (left := deadline - loop.time()) > 0:
            try:
                data = await asyncio.wait_for(queue.get(), min(left, PING_SECONDS))
            except TimeoutError:
                yield ServerSentEventMessage(comment="ping")
                continue
            yield ServerSentEventMessage(data=data, event="mail")
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


@get("/events")
async def live_events(rt: Rt, session: Session) -> ServerSentEvent:
    need(session, "read")
    return ServerSentEvent(_events(rt))


ROUTES = [live_events]
