"""Replay's bulk build writes a projection that only appends (the timeline) on
APPEND_WRITERS connections, which take its batches in turn: the rebuilt tables are
the ones a single writer builds, and unreadable events are recorded as dead letters
whichever writer's turn their batch falls on."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from projections import bulk
from projections.base import Projection
from projections.messages import MessagesProjection
from projections.replay import replay
from projections.suppressions import SuppressionsProjection
from projections.timeline import TimelineProjection
from shared.eventlog import append
from shared.events import Accepted, Delivered, Envelope, event_id_for
from shared.mailbox import Mailbox
from shared.subjects import EVT_STREAM

# the timeline first: its writers are the first given each batch, dead letters included
ORDER: list[Projection] = [TimelineProjection(), MessagesProjection(), SuppressionsProjection()]
QUERIES = {
    "timeline": "SELECT seq, message_id, type, occurred_at, data FROM message_events ORDER BY seq",
    "messages": "SELECT id, status, accepted_at, delivered_at, last_seq FROM messages ORDER BY id",
    "dead": "SELECT seq, subject FROM projection_dead_letters ORDER BY seq",
}


async def fill(js: JetStreamContext) -> None:
    for i in range(24):
        mid = f"lane{i:02d}"
        envelope = Envelope(sender=Mailbox(email="a@example.com"),
                            to=(Mailbox(email=f"u{i}@example.com"),))  # fmt: skip
        await append(js, Accepted(event_id=event_id_for(mid, "accepted"), message_id=mid,
                                  envelope=envelope, template="welcome"))  # fmt: skip
        if i in (5, 13):  # unreadable: lands in batches of different turns
            await js.publish(f"mail.evt.bad{i}.accepted", b"{not json", stream=EVT_STREAM)
        await append(js, Delivered(event_id=event_id_for(mid, "delivered"), message_id=mid,
                                   attempt=1, provider="smtp", smtp_code=250))  # fmt: skip


async def tables(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return {name: await (await conn.execute(q)).fetchall() for name, q in QUERIES.items()}


async def test_two_timeline_writers_build_what_one_builds(
    js: JetStreamContext, nc: Client, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill(js)
    monkeypatch.setattr(bulk, "APPEND_WRITERS", 1)
    await replay(database_url, nc, ORDER, max_batch=5)
    one = await tables(database_url)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("DELETE FROM projection_dead_letters")
        await conn.commit()
    monkeypatch.setattr(bulk, "APPEND_WRITERS", 2)
    result = await replay(database_url, nc, ORDER, max_batch=5)
    two = await tables(database_url)
    assert result.events == 50 and len(two["timeline"]) == 48 and len(two["messages"]) == 24
    assert [subject for _, subject in two["dead"]] == ["mail.evt.bad5.accepted",
                                                      "mail.evt.bad13.accepted"]  # fmt: skip
    assert two == one
