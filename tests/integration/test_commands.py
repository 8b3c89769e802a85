"""The commands besides `send`, through real NATS: a batch fans out into one message
per entry, a resend reuses (or re-renders) an earlier message, and suppression
changes become events the read model shows with their cause."""

from __future__ import annotations

import email
import json
import uuid
from typing import Any

import psycopg
from nats.js import JetStreamContext

from services.capture import CaptureSink
from shared.subjects import (
    CMD_RESEND,
    CMD_SEND,
    CMD_SEND_BATCH,
    CMD_STREAM,
    CMD_SUPPRESS,
    CMD_UNSUPPRESS,
)
from tests.conftest import Pipeline, Projector
from tests.eventlog_reader import read_all, types_of, wait_for_count, wait_for_event


async def publish(js: JetStreamContext, subject: str, payload: dict[str, Any] | bytes) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    await js.publish(subject, body, stream=CMD_STREAM)


async def test_batch_fans_out_and_bad_entries_are_rejected_alone(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    ids = [uuid.uuid4().hex for _ in range(3)]
    await publish(js, CMD_SEND_BATCH, {
        "template": "welcome", "shared": {"tags": ["launch"]},
        "recipients": [
            {"to": "a@example.com", "vars": {"name": "A"}, "message_id": ids[0]},
            {"to": "bad address", "vars": {"name": "B"}, "message_id": ids[1]},
            {"to": "c@example.com", "vars": {"name": "C"}, "message_id": ids[2]},
        ],
    })  # fmt: skip
    await wait_for_event(js, ids[0], "delivered")
    await wait_for_event(js, ids[2], "delivered")
    rejected = await wait_for_event(js, ids[1], "rejected")
    assert "invalid address" in getattr(rejected, "reason", "")
    await sink.wait_for(2, timeout=10)
    assert sorted(m.rcpt_tos[0] for m in sink.received) == ["a@example.com", "c@example.com"]


async def test_malformed_batch_is_one_rejection(pipeline: Pipeline, js: JetStreamContext) -> None:
    await publish(js, CMD_SEND_BATCH, {"recipients": [{"to": "a@example.com"}]})
    await publish(js, CMD_SEND, {"to": "z@example.com", "subject": "s", "text": "t",
                                 "message_id": "after-batch"})  # fmt: skip
    await wait_for_event(js, "after-batch", "delivered")
    [rejected] = await read_all(js, "mail.evt.*.rejected")
    assert "need a 'template'" in getattr(rejected, "reason", "")


async def test_resend_reuses_content_or_rerenders(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    original = uuid.uuid4().hex
    await publish(js, CMD_SEND, {"to": "a@example.com", "template": "welcome",
                                 "vars": {"name": "Ann"}, "message_id": original})  # fmt: skip
    await wait_for_event(js, original, "delivered")
    again, fresh = uuid.uuid4().hex, uuid.uuid4().hex
    await publish(js, CMD_RESEND, {"message_id": original, "new_message_id": again})
    await publish(js, CMD_RESEND, {"message_id": original, "new_message_id": fresh,
                                   "rerender": True})  # fmt: skip
    for mid in (again, fresh):
        await wait_for_event(js, mid, "delivered")
    assert (await types_of(js, original)).count("resent") == 2
    mails = {email.message_from_bytes(m.data)["Message-ID"]: m for m in await sink.wait_for(3, 10)}
    assert set(mails) == {f"<{m}@jetpost.test>" for m in (original, again, fresh)}
    first = email.message_from_bytes(mails[f"<{original}@jetpost.test>"].data)
    copy = email.message_from_bytes(mails[f"<{again}@jetpost.test>"].data)
    assert first["Subject"] == copy["Subject"]
    accepted = await wait_for_event(js, again, "accepted")
    assert getattr(accepted, "resend_of", None) == original


async def test_resend_of_unknown_message_is_rejected(
    pipeline: Pipeline, js: JetStreamContext
) -> None:
    await publish(js, CMD_RESEND, {"message_id": "nope", "new_message_id": "new-1"})
    rejected = await wait_for_event(js, "new-1", "rejected")
    assert "no message 'nope'" in getattr(rejected, "reason", "")


async def test_suppressions_come_and_go_with_their_cause(
    pipeline: Pipeline, projector: Projector, js: JetStreamContext, database_url: str
) -> None:
    await publish(js, CMD_SUPPRESS, {"address": "Bob@Example.com", "reason": "asked us"})
    await publish(js, CMD_SUPPRESS, {"address": "carol@example.com", "scope": "news"})
    await publish(js, CMD_UNSUPPRESS, {"address": "carol@example.com", "scope": "news"})
    await publish(js, CMD_SUPPRESS, {"address": "not an address"})
    await wait_for_count(js, 4)
    [rejected] = [e for e in await read_all(js) if e.type == "rejected"]
    assert "address" in getattr(rejected, "reason", "")
    await projector.caught_up(js)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await (await conn.execute(
            "SELECT address, scope, reason, event_id FROM suppressions")).fetchall()  # fmt: skip
    assert [(a, s, r) for a, s, r, _ in rows] == [("bob@example.com", "", "asked us")]
    assert rows[0][3]  # the event that caused it
