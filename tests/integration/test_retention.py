"""Retention: old read-model rows and captured mail go in small batches while the
projections keep folding new events (real NATS and Postgres)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from nats.js import JetStreamContext

from projections.retention import run_retention, sweep
from shared.eventlog import append
from shared.events import Accepted, Delivered, Envelope, Event, SuppressionAdded, event_id_for
from shared.mailbox import Mailbox
from shared.settings import Settings
from tests.conftest import Projector


def life(mid: str, at: datetime) -> list[Event]:
    envelope = Envelope(sender=Mailbox(email="noreply@jetpost.test"),
                        to=(Mailbox(email=f"{mid[:8]}@example.com"),))  # fmt: skip
    return [
        Accepted(event_id=event_id_for(mid, "accepted"), message_id=mid, occurred_at=at,
                 envelope=envelope, subject="Hi", text="Hello"),
        Delivered(event_id=event_id_for(mid, "delivered"), message_id=mid,
                  occurred_at=at + timedelta(seconds=1), attempt=1, provider="smtp"),
    ]  # fmt: skip


async def rows(database_url: str, query: str) -> set[str]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(query)
        return {str(row[0]) for row in await cur.fetchall()}


async def test_retention_deletes_old_rows_and_files_while_projections_keep_up(
    settings: Settings, js: JetStreamContext, projector: Projector, database_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    now = datetime.now(UTC)
    old = [uuid.uuid4().hex for _ in range(7)]
    recent = [uuid.uuid4().hex for _ in range(3)]
    for mid in old:
        for event in life(mid, now - timedelta(days=40)):
            await append(js, event)
    # a message created long ago but still active keeps its row and timeline
    active = old.pop()
    await append(js, Delivered(event_id=uuid.uuid4().hex, message_id=active, attempt=2,
                               provider="smtp"), n=2)  # fmt: skip
    for mid in recent:
        for event in life(mid, now - timedelta(days=1)):
            await append(js, event)
    sup = SuppressionAdded(event_id=uuid.uuid4().hex, message_id="sup-old", address="x@x.test",
                           reason="manual", occurred_at=now - timedelta(days=40))  # fmt: skip
    await append(js, sup)
    await projector.caught_up(js)
    capture = settings.data_dir / "capture"
    capture.mkdir(parents=True)
    (capture / "old.eml").write_bytes(b"Subject: old\r\n\r\nold\r\n")
    (capture / "new.eml").write_bytes(b"Subject: new\r\n\r\nnew\r\n")
    long_ago = time.time() - 40 * 86400
    os.utime(capture / "old.eml", (long_ago, long_ago))

    kept = settings.model_copy(update={"database_url": database_url, "retention_days": 30.0,
                                       "retention_batch": 2})  # fmt: skip
    more = [uuid.uuid4().hex for _ in range(20)]

    async def keep_appending() -> None:
        for mid in more:
            for event in life(mid, datetime.now(UTC)):
                await append(js, event)

    swept, _ = await asyncio.gather(sweep(kept), keep_appending())
    assert (swept.messages, swept.events, swept.files) == (6, 13, 1)
    await projector.caught_up(js, timeout=30)  # the projections were never held up

    messages = await rows(database_url, "SELECT id FROM messages")
    assert messages == {active, *recent, *more}
    timeline = await rows(database_url, "SELECT DISTINCT message_id FROM message_events")
    assert timeline == {active, *recent, *more}
    assert [p.name for p in capture.iterdir()] == ["new.eml"]

    # the worker makes its first pass at start-up, then waits for the next
    late = uuid.uuid4().hex
    for event in life(late, now - timedelta(days=31)):
        await append(js, event)
    await projector.caught_up(js)
    assert late in await rows(database_url, "SELECT id FROM messages")
    stop, started = asyncio.Event(), asyncio.Event()
    worker = asyncio.create_task(run_retention(kept, stop, started))
    try:
        async with asyncio.timeout(20):
            while True:  # bounded polling of another job's work
                if late not in await rows(database_url, "SELECT id FROM messages"):
                    break
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)
    assert await rows(database_url, "SELECT id FROM messages") == messages
