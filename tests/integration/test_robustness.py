"""Bad input and unexpected failures never block a stream nor stop the read models."""

from __future__ import annotations

import json
import uuid

import psycopg
from nats.js import JetStreamContext

from shared.eventlog import append
from shared.events import Deferred, Rejected, event_id_for
from shared.subjects import CMD_SEND, CMD_STREAM
from tests.conftest import Pipeline, Projector
from tests.eventlog_reader import read_all, wait_for_count, wait_for_event


async def test_a_content_type_header_does_not_get_a_bad_command_stuck(
    pipeline: Pipeline, js: JetStreamContext
) -> None:
    json_header = {"content-type": "application/json"}
    await js.publish(CMD_SEND, b"{not json", stream=CMD_STREAM, headers=json_header)
    await js.publish(
        CMD_SEND, b"\xff\xfe", stream=CMD_STREAM, headers={"content-type": "text/plain"}
    )
    good = {"to": "a@example.com", "subject": "s", "text": "t", "message_id": uuid.uuid4().hex}
    await js.publish(CMD_SEND, json.dumps(good).encode(), stream=CMD_STREAM, headers=json_header)
    await wait_for_event(js, good["message_id"], "delivered")
    await wait_for_count(js, 2, "mail.evt.*.rejected", timeout=20)
    reasons = sorted(getattr(e, "reason", "") for e in await read_all(js, "mail.evt.*.rejected"))
    assert all(r.startswith("invalid JSON") for r in reasons), reasons


async def test_nul_characters_do_not_stop_the_read_models(
    projector: Projector, js: JetStreamContext, database_url: str
) -> None:
    mid, other = ("nul-" + uuid.uuid4().hex[:8] for _ in range(2))
    rejected = Rejected(
        event_id=event_id_for(mid, "rejected"),
        message_id=mid,
        reason="bad\x00byte",
        command_subject=CMD_SEND,
        raw="{\x00}",
    )
    deferred = Deferred(
        event_id=event_id_for(other, "deferred"),
        message_id=other,
        attempt=1,
        provider="smtp",
        response="451 \x00 later",
        retry_in=1,
    )
    await append(js, rejected)
    await append(js, deferred)
    await projector.caught_up(js)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (await conn.execute(
            "SELECT id, last_error FROM messages ORDER BY id")).fetchall()  # fmt: skip
        events = await (await conn.execute("SELECT count(*) FROM message_events")).fetchone()
    assert sorted(rows) == sorted([(mid, "bad\ufffdbyte"), (other, "451 \ufffd later")])
    assert events == (2,)
