"""Start-up against a cluster with one node down: services given all three URLs come
up and deliver; a process given only the dead node fails within the bounded wait,
naming it; `jetpost streams` holds a lower JETPOST_NATS_REPLICAS back, and
`--apply` makes it only when confirmed."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from subprocess import Popen

import pytest

from services.capture import CaptureSink
from shared.nats_connect import connect
from shared.settings import Settings
from shared.subjects import EVT_STREAM
from tests.cluster.conftest import cluster_env, copies, jetpost, publish_send, stop_all
from tests.cluster.harness import NatsCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # a cluster, processes, kills


async def test_one_node_down(
    cluster: NatsCluster,
    cluster_settings: Settings,
    sink: CaptureSink,
    spawn: Callable[..., Popen[bytes]],
    tmp_path: Path,
) -> None:
    env = cluster_env(cluster_settings)
    made = jetpost(["streams"], env)  # created on purpose while every node is up
    assert made.returncode == 0, made.stderr
    assert re.search(r"MAIL_EVT .* replicas=3 leader=n\d peers=n\d,n\d", made.stderr), made.stderr

    dead = cluster.nodes[0]
    cluster.kill(dead.name)
    alone = {**env, "JETPOST_NATS_URL": dead.url, "JETPOST_NATS_CONNECT_TIMEOUT": "2"}
    started = time.monotonic()
    refused = jetpost(["streams"], alone)
    refused_in = time.monotonic() - started
    print(f"\nonly the dead node: refused after {refused_in:.1f}s: {refused.stderr.strip()}")
    assert refused.returncode == 2 and refused_in < 20
    assert f"no NATS server answered within 2s (tried {dead.url})" in refused.stderr, refused.stderr

    log = tmp_path / "services.log"
    services = spawn(["run", "intake", "renderer", "sender"], env, log)  # the dead node is listed
    nc = await connect(cluster_settings)
    try:
        js = nc.jetstream(timeout=5)
        ids = [uuid.uuid4().hex for _ in range(20)]
        for mid in ids:
            await publish_send(js, mid)
        await sink.wait_for(len(ids), timeout=60)
        assert set(copies(sink)) == set(ids)
        assert (await js.stream_info(EVT_STREAM)).config.num_replicas == 3

        lower = {**env, "JETPOST_NATS_REPLICAS": "1"}
        held = jetpost(["streams"], lower)
        assert held.returncode == 0, held.stderr
        assert "stream MAIL_EVT: num_replicas 3 -> 1" in held.stderr, held.stderr
        assert (await js.stream_info(EVT_STREAM)).config.num_replicas == 3

        declined = jetpost(["streams", "--apply"], lower, stdin="n\n")
        assert declined.returncode == 1 and "nothing changed" in declined.stderr
        assert (await js.stream_info(EVT_STREAM)).config.num_replicas == 3

        applied = jetpost(["streams", "--apply", "--yes"], lower)
        assert applied.returncode == 0, applied.stderr
        assert "will change" in applied.stderr and "num_replicas 3 -> 1" in applied.stderr
        assert (await js.stream_info(EVT_STREAM)).config.num_replicas == 1
        consumer = await js.consumer_info(EVT_STREAM, "sender")
        assert consumer.config.num_replicas == 1
    finally:
        await nc.close()
        await stop_all([services])
