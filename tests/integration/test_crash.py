"""The sender killed mid-run (SIGKILL, as a crash) and started again: every accepted
message still ends delivered. Intake and renderer run in this process; the sender
runs as `jetpost run sender` child processes, two at once after the restart, which
share the durable consumer's work."""

from __future__ import annotations

import email
import json
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from subprocess import Popen

from nats.js import JetStreamContext

from services.capture import CaptureSink
from shared.settings import Settings
from shared.subjects import CMD_SEND, CMD_STREAM, EVT_STREAM
from tests.conftest import Pipeline, service_env
from tests.eventlog_reader import wait_for_count

N = 300


async def count(js: JetStreamContext, event_type: str) -> int:
    info = await js.stream_info(EVT_STREAM, subjects_filter=f"mail.evt.*.{event_type}")
    return sum((info.state.subjects or {}).values())


async def test_sender_killed_and_restarted_delivers_everything(
    settings: Settings,
    js: JetStreamContext,
    sink: CaptureSink,
    spawn: Callable[..., Popen[bytes]],
    tmp_path: Path,
) -> None:
    settings = settings.model_copy(update={"ack_wait": 2.0, "smtp_pool_size": 2})
    front = Pipeline(settings)
    await front.start(("intake", "renderer"), ack_wait=2.0)
    env = service_env(settings)
    log = tmp_path / "sender.log"
    try:
        first = spawn(["run", "sender"], env, log)
        ids = [uuid.uuid4().hex for _ in range(N)]
        for mid in ids:
            command = {"to": f"u-{mid[:6]}@example.com", "template": "welcome",
                       "vars": {"name": mid[:6]}, "message_id": mid}  # fmt: skip
            await js.publish(CMD_SEND, json.dumps(command).encode(), stream=CMD_STREAM)
        await sink.wait_for(N // 5, timeout=60)  # well under way...
        first.send_signal(signal.SIGKILL)  # ...then crash, mid-batch
        first.wait(10)
        delivered_at_crash = await count(js, "delivered")
        assert delivered_at_crash < N, "the crash came too late to prove anything"
        spawn(["run", "sender"], env, log)
        spawn(["run", "sender"], env, log)
        await wait_for_count(js, N, "mail.evt.*.delivered", timeout=120)
    finally:
        await front.stop()
    assert await count(js, "delivered") == N
    assert await count(js, "accepted") == N
    assert await count(js, "failed") == 0
    arrived = {
        email.message_from_bytes(m.data)["Message-ID"].strip("<>").split("@")[0]
        for m in sink.received
    }
    print(f"delivered at crash: {delivered_at_crash}, mails received: {len(sink.received)}")
    assert arrived == set(ids)  # at-least-once: every message arrived (a few maybe twice)
