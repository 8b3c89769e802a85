"""JETPOST_PIPELINE_WORKERS=2: `jetpost run intake renderer sender` runs the pipeline
in two processes, the sender apart in the child; each pulls from its consumers, every
mail is delivered, they stop together, and a child that dies is started again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from subprocess import Popen

import httpx
import pytest
from nats.js import JetStreamContext

from services.capture import CaptureSink
from shared.embedded import free_port
from shared.settings import Settings
from shared.subjects import CMD_SEND, CMD_STREAM, EVT_STREAM
from tests.conftest import service_env
from tests.eventlog_reader import wait_for_count
from tests.integration.test_api_support import eventually
from tests.integration.test_metrics import scrape, value
from tests.processes import alive, children, command_line

N = 60
WORKER = "services.cli.main run"  # the command line of a pipeline worker process


@pytest.mark.slow
async def test_pipeline_in_two_processes(
    settings: Settings,
    js: JetStreamContext,
    sink: CaptureSink,
    spawn: Callable[..., Popen[bytes]],
    tmp_path: Path,
) -> None:
    metrics = _two_free_ports()
    env = {**service_env(settings), "JETPOST_PIPELINE_WORKERS": "2",
           "JETPOST_METRICS_PORT": str(metrics)}  # fmt: skip
    log = tmp_path / "run.log"
    parent = spawn(["run", "intake", "renderer", "sender"], env, log)

    async def both_pulling() -> list[int]:
        if parent.poll() is not None:
            raise AssertionError(log.read_text())
        waiting = [(await js.consumer_info(EVT_STREAM, name)).num_waiting
                   for name in ("renderer", "sender")]  # fmt: skip
        started = children(parent.pid, WORKER)
        return started if min(waiting) >= 1 else []

    (child,) = await eventually(both_pulling, "the renderer and the sender to pull",
                                timeout=60)  # fmt: skip
    assert command_line(child).split()[-2:] == ["run", "sender"]
    # the parent does not pull for the sender: at most the child's request is waiting
    # (an idle window keeps one; for a moment none, as it expires and is renewed)
    assert (await js.consumer_info(EVT_STREAM, "sender")).num_waiting <= 1
    ids = [uuid.uuid4().hex for _ in range(N)]
    for mid in ids:
        command = {"to": f"u-{mid[:6]}@example.com", "template": "welcome",
                   "vars": {"name": mid[:6]}, "message_id": mid}  # fmt: skip
        await js.publish(CMD_SEND, json.dumps(command).encode(), stream=CMD_STREAM)
    await wait_for_count(js, N, "mail.evt.*.delivered", timeout=60)
    await sink.wait_for(N, timeout=30)
    # the sender's counts are served by its worker, on the next port
    async with httpx.AsyncClient(timeout=5) as client:
        worker = await scrape(client, metrics + 1)
        delivered = value(worker, "jetpost_messages_total", outcome="delivered",
                          provider="smtp", domain="example.com")  # fmt: skip
        assert delivered == N
        first = await scrape(client, metrics)
        assert value(first, "jetpost_events_appended_total", type="rendered") == N

    # a child that dies is started again (the supervisor restarts the group)
    os.kill(child, signal.SIGKILL)

    async def replaced() -> list[int]:
        if parent.poll() is not None:
            raise AssertionError(log.read_text())
        return [pid for pid in children(parent.pid, WORKER) if pid != child]

    (child,) = await eventually(replaced, "a new pipeline worker", timeout=60)
    assert "a pipeline worker exited" in log.read_text()

    parent.send_signal(signal.SIGINT)
    assert await asyncio.to_thread(parent.wait, 60) == 0, log.read_text()

    async def gone() -> bool:
        return not alive(child)

    await eventually(gone, "the pipeline worker to stop with the first", timeout=60)


def _two_free_ports() -> int:
    """A port free now whose next one is free too (the worker's /metrics)."""
    while True:
        port = free_port()
        if port < 65535:
            with contextlib.suppress(OSError), socket.socket() as probe:
                probe.bind(("127.0.0.1", port + 1))
                return port
