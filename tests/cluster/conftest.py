"""Fixtures of the cluster tests: a 3-node NATS cluster and the settings that make
jetpost processes use all three nodes with R3."""

from __future__ import annotations

import asyncio
import email
import json
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from subprocess import Popen

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from services.capture import CaptureSink
from shared.consumers import TRANSIENT_ERRORS
from shared.nats_connect import connect
from shared.settings import Settings
from shared.subjects import CMD_SEND, CMD_STREAM, EVT_STREAM
from tests.cluster.harness import NatsCluster
from tests.conftest import JETPOST, base_settings, service_env


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    nodes = NatsCluster(tmp_path / "cluster")
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture
def cluster_settings(tmp_path: Path, cluster: NatsCluster, sink: CaptureSink) -> Settings:
    return base_settings(cluster.urls, tmp_path, sink, nats_replicas=3)


def cluster_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = service_env(settings)
    env["JETPOST_NATS_REPLICAS"] = str(settings.nats_replicas)
    env.update(extra)
    return env


@pytest.fixture
async def cnc(cluster_settings: Settings) -> AsyncIterator[Client]:
    """The test's own client, on every node of the cluster."""
    client = await connect(cluster_settings, name="test")
    yield client
    await client.close()


async def publish_send(js: JetStreamContext, message_id: str) -> None:
    """One send command, retried (same Nats-Msg-Id: stored once) through a failover."""
    command = {"to": f"u-{message_id[:8]}@example.com", "template": "welcome",
               "vars": {"name": message_id[:8]}, "message_id": message_id}  # fmt: skip
    for _ in range(120):
        try:
            await js.publish(CMD_SEND, json.dumps(command).encode(), stream=CMD_STREAM,
                             headers={"Nats-Msg-Id": message_id}, timeout=2)  # fmt: skip
            return
        except TRANSIENT_ERRORS:  # no responders, timeouts: during an election
            await asyncio.sleep(0.25)
    raise AssertionError(f"command {message_id} never published")


def copies(sink: CaptureSink) -> Counter[str]:
    """Mail in the sink, per jetpost message id."""
    return Counter(
        str(email.message_from_bytes(m.data)["X-Jetpost-Message-Id"]) for m in sink.received
    )


async def per_message(js: JetStreamContext, event_type: str) -> Counter[str]:
    """How many `event_type` events each message has in MAIL_EVT."""
    info = await js.stream_info(EVT_STREAM, subjects_filter=f"mail.evt.*.{event_type}")
    return Counter({s.split(".")[2]: n for s, n in (info.state.subjects or {}).items()})


def jetpost(
    args: list[str], env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """A `jetpost` command run to its end (the console goes to stderr)."""
    return subprocess.run([JETPOST, *args], env=env, input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


async def stop_all(processes: list[Popen[bytes]], timeout: float = 30.0) -> None:
    """SIGTERM to every child at once, waited for without blocking this event loop: the
    SMTP sink they are saying goodbye to runs on it."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        await asyncio.to_thread(process.wait, timeout)
