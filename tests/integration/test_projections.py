"""Read models folded from the log: they agree with the fold over each message's
events, and a replay rebuilds them equal row for row."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
from nats.aio.client import Client
from nats.js import JetStreamContext

from projections.replay import replay
from projections.runner import PROJECTIONS
from services.capture import CaptureSink
from shared.fold import fold
from shared.subjects import CMD_SEND, CMD_STREAM
from tests.conftest import Pipeline, Projector
from tests.eventlog_reader import history, wait_for_any

TERMINAL = ("delivered", "bounced", "failed", "rejected", "render_failed")
SNAPSHOTS = {
    "messages": "SELECT * FROM messages ORDER BY id",
    "message_events": "SELECT * FROM message_events ORDER BY seq",
    "suppressions": "SELECT * FROM suppressions ORDER BY address, scope",
    "daily_stats": "SELECT * FROM daily_stats ORDER BY day, template, outcome",
}


async def snapshot(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return {t: await (await conn.execute(q)).fetchall() for t, q in SNAPSHOTS.items()}


async def send_mix(js: JetStreamContext, sink: CaptureSink) -> list[str]:
    """Mail that ends every way it can: delivered, deferred then delivered, bounced,
    rejected, render_failed."""
    sink.script(["451 4.3.0 later", "550 5.1.1 unknown user"])
    commands: list[dict[str, Any]] = [
        {"to": f"user{i}@example.com", "template": "welcome", "vars": {"name": f"U{i}"},
         "tags": ["batch"]}
        for i in range(6)
    ]  # fmt: skip
    commands.append({"to": "x@example.com", "template": "welcome", "vars": {}})  # render_failed
    commands.append({"to": "not an address", "subject": "s", "text": "t"})  # rejected
    ids = []
    for command in commands:
        command["message_id"] = uuid.uuid4().hex
        ids.append(command["message_id"])
        await js.publish(CMD_SEND, json.dumps(command).encode(), stream=CMD_STREAM)
    for mid in ids:
        await wait_for_any(js, mid, TERMINAL)
    return ids


async def test_messages_agree_with_the_fold_and_replay_rebuilds_them(
    pipeline: Pipeline, projector: Projector, js: JetStreamContext, sink: CaptureSink,
    database_url: str, nc: Client,
) -> None:  # fmt: skip
    ids = await send_mix(js, sink)
    await projector.caught_up(js)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT id, status, attempts FROM messages")
        rows = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
    assert set(rows) == set(ids)
    for mid in ids:
        state = fold(await history(js, mid))
        assert rows[mid] == (state.status, state.attempts)
    statuses = sorted(status for status, _ in rows.values())
    assert statuses.count("delivered") == 5
    assert {"bounced", "rejected", "render_failed"} <= set(statuses)

    live = await snapshot(database_url)
    result = await replay(database_url, nc, list(PROJECTIONS.values()))
    assert result.events == (await js.stream_info("MAIL_EVT")).state.last_seq
    assert await snapshot(database_url) == live
    # a second replay, after the first one renamed the tables, works the same way
    await replay(database_url, nc, list(PROJECTIONS.values()))
    assert await snapshot(database_url) == live
