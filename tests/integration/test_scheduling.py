"""Scheduled sends on JetStream message schedules, cancel and reschedule, against a
real nats-server, the services and an SMTP sink."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nats.js import JetStreamContext

from services.capture import CaptureSink
from shared.embedded import EmbeddedNats
from shared.events import Rejected
from shared.settings import Settings
from shared.subjects import (
    CMD_CANCEL,
    CMD_RESCHEDULE,
    CMD_SEND,
    CMD_SEND_BATCH,
    CMD_STREAM,
    event_filter,
)
from tests.conftest import JETPOST, Pipeline, service_env
from tests.eventlog_reader import read_all, types_of, wait_for_event
from tests.integration.test_api_support import eventually


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def command(**extra: Any) -> dict[str, Any]:
    return {"to": "alice@example.com", "subject": "Later", "text": "hello",
            "message_id": uuid.uuid4().hex, **extra}  # fmt: skip


async def publish(js: JetStreamContext, subject: str, body: dict[str, Any]) -> None:
    await js.publish(subject, json.dumps(body).encode(), stream=CMD_STREAM)


def mails_for(sink: CaptureSink, mid: str) -> int:
    return sum(f"<{mid}@".encode() in mail.data for mail in sink.received)


async def test_send_at_is_held_until_due_then_sent_once(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    due = datetime.now(UTC) + timedelta(seconds=5)
    cmd = command(send_at=due.isoformat())
    await publish(js, CMD_SEND, cmd)
    await wait_for_event(js, cmd["message_id"], "scheduled")
    with pytest.raises(TimeoutError):  # bounded: nothing may arrive before it is due
        await wait_for_event(js, cmd["message_id"], "accepted", timeout=3.5)
    assert mails_for(sink, cmd["message_id"]) == 0
    await wait_for_event(js, cmd["message_id"], "delivered", timeout=15)
    assert datetime.now(UTC) >= due
    assert mails_for(sink, cmd["message_id"]) == 1
    types = await types_of(js, cmd["message_id"])
    assert types == ["scheduled", "accepted", "rendered", "attempted", "delivered"]


async def test_cancel_before_due_is_never_sent_and_twice_changes_nothing(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    cmd = command(send_at=at(2))
    await publish(js, CMD_SEND, cmd)
    await wait_for_event(js, cmd["message_id"], "scheduled")
    await publish(js, CMD_CANCEL, {"message_id": cmd["message_id"], "reason": "changed mind"})
    await publish(js, CMD_CANCEL, {"message_id": cmd["message_id"]})
    await wait_for_event(js, cmd["message_id"], "cancelled")
    other = command(send_at=at(3))  # a later one goes out: the schedules did fire by then
    await publish(js, CMD_SEND, other)
    await wait_for_event(js, other["message_id"], "delivered", timeout=15)
    assert await types_of(js, cmd["message_id"]) == ["scheduled", "cancelled"]
    assert mails_for(sink, cmd["message_id"]) == 0
    assert not await read_all(js, event_filter("rejected"))


async def test_cancel_after_delivery_is_refused(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    cmd = command()
    await publish(js, CMD_SEND, cmd)
    await wait_for_event(js, cmd["message_id"], "delivered")
    await publish(js, CMD_CANCEL, {"message_id": cmd["message_id"]})
    rejected = await eventually(lambda: read_all(js, event_filter("rejected")), "a rejection")
    assert isinstance(rejected[0], Rejected)
    assert "delivered: too late to cancel" in rejected[0].reason
    assert await types_of(js, cmd["message_id"]) == ["accepted", "rendered", "attempted",
                                                     "delivered"]  # fmt: skip


async def test_reschedule_earlier_and_later(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    sooner, later = command(send_at=at(600)), command(send_at=at(1))
    await publish(js, CMD_SEND, sooner)
    await publish(js, CMD_SEND, later)
    await wait_for_event(js, sooner["message_id"], "scheduled")
    await wait_for_event(js, later["message_id"], "scheduled")
    await publish(js, CMD_RESCHEDULE, {"message_id": sooner["message_id"], "send_at": at(1)})
    await publish(js, CMD_RESCHEDULE, {"message_id": later["message_id"], "send_at": at(600)})
    await wait_for_event(js, sooner["message_id"], "delivered", timeout=15)
    assert await types_of(js, later["message_id"]) == ["scheduled", "rescheduled"]
    assert mails_for(sink, later["message_id"]) == 0


@pytest.mark.slow
async def test_schedules_survive_a_nats_server_restart(
    nats_server: EmbeddedNats, pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    cmds = [command(send_at=at(2)) for _ in range(3)]
    for cmd in cmds:
        await publish(js, CMD_SEND, cmd)
    for cmd in cmds:
        await wait_for_event(js, cmd["message_id"], "scheduled")
    await pipeline.stop()
    nats_server.stop()
    await asyncio.sleep(2.5)  # the server is down while they fall due (not a wait for a result)
    nats_server.restart()
    await pipeline.start()
    for cmd in cmds:
        await wait_for_event(js, cmd["message_id"], "delivered", timeout=30)
    assert [mails_for(sink, c["message_id"]) for c in cmds] == [1, 1, 1]


async def test_cli_send_at_and_cancel(
    pipeline: Pipeline, js: JetStreamContext, settings: Settings
) -> None:
    env = service_env(settings)

    async def jetpost(*args: str) -> tuple[int, str]:
        child = await asyncio.create_subprocess_exec(
            JETPOST, *args, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(child.communicate(), 30)
        return child.returncode or 0, out.decode()

    code, out = await jetpost("send", "--to", "a@example.com", "--subject", "s", "--text", "t",
                              "--at", at(3600))  # fmt: skip
    assert code == 0, out
    mid = out.strip().splitlines()[-1]
    await wait_for_event(js, mid, "scheduled")
    code, out = await jetpost("cancel", mid)
    assert (code, out.strip()) == (0, "cancelled")
    assert await types_of(js, mid) == ["scheduled", "cancelled"]


async def test_bulk_lane_releases_a_batch_and_a_queued_message_can_be_cancelled(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    entries = [command(transactional=i == 0) for i in range(6)]
    await publish(js, CMD_SEND_BATCH, {"messages": entries})
    tx, bulk = entries[0]["message_id"], [e["message_id"] for e in entries[1:]]
    for mid in bulk:
        await wait_for_event(js, mid, "delivered")
    assert (await types_of(js, bulk[0]))[:2] == ["queued", "accepted"]
    assert (await types_of(js, tx))[0] == "accepted"  # transactional: no lane

    await pipeline.stop()  # nothing releases it now: cancel it while queued
    late = command()
    await publish(js, CMD_SEND_BATCH, {"messages": [late]})
    await pipeline.start(("intake",))
    await wait_for_event(js, late["message_id"], "queued")
    await publish(js, CMD_CANCEL, {"message_id": late["message_id"]})
    await wait_for_event(js, late["message_id"], "cancelled")
    await pipeline.stop()
    await pipeline.start()

    async def lane_done() -> bool:
        info = await js.consumer_info("MAIL_EVT", "bulk_lane")
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await eventually(lane_done, "the bulk lane to handle the cancelled message")
    assert await types_of(js, late["message_id"]) == ["queued", "cancelled"]
