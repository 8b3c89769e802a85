"""A sender killed (-9) mid-run leaves the mail it was holding un-acked: with the
consumers' short ack waits (nats/jetstream.yaml, kept alive by heartbeats while a
handler works) a second copy delivers it within about one ack wait, not the 300 s
the sender's consumer used to wait (issue 14, item 8). No JETPOST_ACK_WAIT here: the
definitions' own values are under test."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from subprocess import Popen

import pytest
from nats.js import JetStreamContext

from services.capture import CaptureSink
from shared.nats_setup import load_definitions
from shared.settings import Settings
from tests.cluster.conftest import publish_send, stop_all
from tests.cluster.harness import FlowMeter, wait_logged
from tests.conftest import Pipeline, service_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # processes, a kill

N = 200


async def test_killed_sender_mail_resumes_after_the_short_ack_wait(
    settings: Settings,
    js: JetStreamContext,
    sink: CaptureSink,
    spawn: Callable[..., Popen[bytes]],
    tmp_path: Path,
) -> None:
    assert settings.ack_wait is None
    _, sender = load_definitions(settings).consumer("sender")
    ack_wait = float(sender.ack_wait or 0)
    assert 0 < ack_wait <= 30
    settings = settings.model_copy(update={"smtp_pool_size": 2})
    front = Pipeline(settings)
    await front.start(("intake", "renderer"))
    env = service_env(settings)
    meter = FlowMeter(lambda: len(sink.received))
    senders: list[Popen[bytes]] = []
    try:
        first = spawn(["run", "sender"], env, tmp_path / "sender-1.log")
        senders += [first, spawn(["run", "sender"], env, tmp_path / "sender-2.log")]
        for log in ("sender-1.log", "sender-2.log"):
            await wait_logged(tmp_path / log, "running ")
        for _ in range(N):
            await publish_send(js, uuid.uuid4().hex)
        meter.start()
        await sink.wait_for(N // 5, timeout=90)
        first.send_signal(signal.SIGKILL)  # mid-batch: it holds un-acked mail
        first.wait(10)
        killed_at = time.monotonic()
        held = N - len(sink.received)
        assert held > 0, "the crash came too late to prove anything"
        await sink.wait_for(N, timeout=120)  # fails at a 300 s ack wait
        done = time.monotonic()
    finally:
        await meter.stop()
        await stop_all(senders)
        await front.stop()
    stall = meter.longest_pause(killed_at, done)
    print(
        f"\nsender killed with {held} mails to go: all delivered {done - killed_at:.1f}s later; "
        f"longest stall {stall:.1f}s (ack wait {ack_wait:g}s)"
    )
    assert done - killed_at < ack_wait + 60
