"""An address suppressed while its mail waits (scheduled, or queued in the bulk lane) is
checked again when the mail is released: the scheduler and the bulk lane leave it
out, and a message with nobody left becomes `suppressed`. Real nats-server, the
services and an SMTP sink."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext

from services.capture import CaptureSink
from shared.events import Accepted
from shared.subjects import CMD_SEND, CMD_SEND_BATCH, CMD_STREAM, CMD_SUPPRESS, SUPPRESSION_BUCKET
from shared.suppression_set import get_entry
from tests.conftest import Pipeline
from tests.eventlog_reader import types_of, wait_for_event
from tests.integration.test_api_support import eventually

X, Y = "x-gone@example.com", "y-stays@example.com"


async def publish(js: JetStreamContext, subject: str, body: object) -> None:
    await js.publish(subject, json.dumps(body).encode(), stream=CMD_STREAM)


async def test_suppressed_while_waiting_is_not_sent_at_release(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    # The scheduler and the bulk lane are held back until X is on the suppression set,
    # so the order does not depend on how fast a loaded machine runs.
    await pipeline.stop()
    await pipeline.start(("intake", "suppression_set"))
    due = datetime.now(UTC) + timedelta(seconds=3)
    later, queued = uuid.uuid4().hex, uuid.uuid4().hex
    await publish(js, CMD_SEND, {"to": X, "subject": "Later", "text": "hi",
                                 "message_id": later, "send_at": due.isoformat()})  # fmt: skip
    await publish(js, CMD_SEND_BATCH, {"messages": [
        {"to": [X, Y], "subject": "News", "text": "hi", "message_id": queued}]})  # fmt: skip
    await wait_for_event(js, later, "scheduled")
    await wait_for_event(js, queued, "queued")

    await publish(js, CMD_SUPPRESS, {"address": X, "reason": "hard bounce meanwhile"})
    kv = await js.key_value(SUPPRESSION_BUCKET)
    await eventually(lambda: get_entry(kv, X), "X on the suppression set")
    await pipeline.stop()
    await pipeline.start()

    event = await wait_for_event(js, later, "suppressed", timeout=20)
    assert datetime.now(UTC) >= due  # the schedule fired, and found X suppressed
    assert await types_of(js, later) == ["scheduled", "suppressed"]
    assert "hard bounce meanwhile" in getattr(event, "reason", "")

    await wait_for_event(js, queued, "delivered", timeout=20)
    released = await wait_for_event(js, queued, "accepted")
    assert isinstance(released, Accepted)
    assert [m.email for m in released.envelope.to] == [Y] and released.suppressed == (X,)
    mails = [m for m in sink.received if f"<{queued}@".encode() in m.data]
    assert [m.rcpt_tos for m in mails] == [(Y,)]
    assert not any(f"<{later}@".encode() in m.data for m in sink.received)
