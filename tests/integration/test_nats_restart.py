"""nats-server stopped and started again under running services: mail accepted
before the restart is delivered, and mail sent after it flows too."""

from __future__ import annotations

import json
import uuid

import nats
from nats.js import JetStreamContext

from services.capture import CaptureSink
from shared.embedded import EmbeddedNats
from shared.subjects import CMD_SEND, CMD_STREAM
from tests.conftest import Pipeline
from tests.eventlog_reader import wait_for_event


def command() -> dict[str, object]:
    return {"to": "a@example.com", "template": "welcome", "vars": {"name": "A"},
            "message_id": uuid.uuid4().hex}  # fmt: skip


async def test_services_ride_out_a_nats_restart(
    nats_server: EmbeddedNats, pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    before = command()
    await js.publish(CMD_SEND, json.dumps(before).encode(), stream=CMD_STREAM)
    await wait_for_event(js, str(before["message_id"]), "delivered")

    nats_server.restart()

    nc = await nats.connect(nats_server.url)
    try:
        fresh = nc.jetstream()
        after = command()
        await fresh.publish(CMD_SEND, json.dumps(after).encode(), stream=CMD_STREAM)
        await wait_for_event(fresh, str(after["message_id"]), "delivered", timeout=60)
    finally:
        await nc.close()
    await sink.wait_for(2, timeout=10)
