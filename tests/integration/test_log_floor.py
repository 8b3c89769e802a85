"""bench.e2e_send's phase (c), the log and the SMTP conversation alone, on a real
nats-server and SMTP sink: it carries every mail through the same JetStream operations
as the pipeline, sends it, and leaves nothing behind."""

from __future__ import annotations

import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from bench.log_floor import FLOOR_CMD, FLOOR_EVT, STAGES, Smtp, floor_phase, sample_of
from services.capture import CaptureSink
from tests.conftest import Pipeline
from tests.eventlog_reader import wait_for_event
from tests.integration.test_pipeline import send, welcome


async def test_the_floor_replays_a_delivered_mail_operations(
    pipeline: Pipeline, nc: Client, js: JetStreamContext, sink: CaptureSink
) -> None:
    command = welcome()
    await send(js, command)
    await wait_for_event(js, command["message_id"], "delivered")
    await pipeline.stop()

    sample = await sample_of(js)  # the last message delivered: its four real events
    assert sample.message_id == command["message_id"]
    assert sorted(sample.events) == sorted(STAGES)
    assert b'"type":"rendered"' in sample.events["rendered"]

    # every stage's appends are accepted (the attempted one under compare-and-set on
    # the sequence its direct get read), else the phase raises instead of retrying
    smtp = await Smtp.connect(sink.port, 4, b"Subject: floor\r\n\r\nthe same bytes each time\r\n")
    try:
        seconds, cpu = await floor_phase(nc, n=40, warmup=5, timeout=30, smtp=smtp)
    finally:
        smtp.close()
    assert seconds > 0 and cpu > 0
    floor_mail = [m for m in sink.received if m.data.startswith(b"Subject: floor")]
    assert len(floor_mail) == 45  # warm-up + n, each to its message's own recipient
    assert len({tuple(m.rcpt_tos) for m in floor_mail}) == 45
    for name in (FLOOR_CMD, FLOOR_EVT):
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.stream_info(name)
