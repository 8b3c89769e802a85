"""jetpost on a 3-node NATS cluster with R3, every service (projections included) its
own process given all three URLs: the MAIL_EVT stream leader is killed (-9) mid-run
and restarted, then a node that is not the leader. Every mail arrives, the read models
catch up, the streams stay R3 through every start-up (one of them a copy started with
the default JETPOST_NATS_REPLICAS=1), no process is restarted by hand, duplicates are
counted and each is in the log, and the stall after each kill is printed."""

from __future__ import annotations

import asyncio
import email
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from subprocess import Popen

import psycopg
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from services.capture import CaptureSink
from shared.settings import Settings
from shared.subjects import CMD_STREAM, EVT_STREAM
from tests.cluster.conftest import cluster_env, copies, per_message, publish_send, stop_all
from tests.cluster.harness import (
    FlowMeter,
    NatsCluster,
    stream_leader,
    wait_current,
    wait_logged,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # a cluster, processes, kills

N = 300
TAIL = 20  # commands published only after the second kill
STREAMS = (CMD_STREAM, EVT_STREAM, "KV_mail_idempotency", "KV_mail_suppressions")
CONSUMERS = ((CMD_STREAM, "intake"), (EVT_STREAM, "renderer"), (EVT_STREAM, "sender"),
             (EVT_STREAM, "suppression_set"))  # fmt: skip


async def assert_r3(js: JetStreamContext, when: str) -> None:
    for stream in STREAMS:
        info = await js.stream_info(stream)
        assert info.config.num_replicas == 3, f"{stream} is R{info.config.num_replicas} {when}"
    for stream, durable in CONSUMERS:
        consumer = await js.consumer_info(stream, durable)
        replicas = consumer.config.num_replicas
        assert replicas == 3, f"{stream}/{durable} is R{replicas} {when}"


async def read_models_caught_up(js: JetStreamContext, database_url: str) -> int:
    """Bounded wait until every projection checkpoint is at the head of MAIL_EVT; then
    the number of `delivered` rows in `messages`."""
    async with asyncio.timeout(60), await psycopg.AsyncConnection.connect(database_url) as conn:
        while True:
            head = (await js.stream_info(EVT_STREAM)).state.last_seq
            cur = await conn.execute("SELECT min(last_seq), count(*) FROM projection_checkpoints")
            row = await cur.fetchone()
            await conn.commit()
            if row is not None and row[1] and row[0] >= head:
                break
            await asyncio.sleep(0.2)
        cur = await conn.execute("SELECT count(*) FROM messages WHERE status = 'delivered'")
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def test_leader_and_follower_killed_mid_run(
    cluster: NatsCluster,
    cluster_settings: Settings,
    cnc: Client,
    sink: CaptureSink,
    database_url: str,
    spawn: Callable[..., Popen[bytes]],
    tmp_path: Path,
) -> None:
    js = cnc.jetstream(timeout=5)
    t0 = time.monotonic()

    def mark(what: str) -> None:
        print(f"{time.monotonic() - t0:6.1f}s {len(sink.received):4} mails: {what}")

    env = cluster_env(cluster_settings)
    logs = {name: tmp_path / f"{name}.log" for name in ("intake", "renderer", "sender-1",
                                                       "sender-2", "renderer-r1",
                                                       "projections")}  # fmt: skip
    processes = [spawn(["run", "intake", "suppression_set"], env, logs["intake"])]
    await wait_logged(logs["intake"], "running ")
    await assert_r3(js, "after the first start-up")
    processes += [
        spawn(["run", "renderer"], env, logs["renderer"]),
        spawn(["run", "sender"], env, logs["sender-1"]),
        spawn(["run", "sender"], env, logs["sender-2"]),
        # the defect of issue 13: one more copy with the default replicas scaled R3 to R1
        spawn(["run", "renderer"], cluster_env(cluster_settings, JETPOST_NATS_REPLICAS="1"),
              logs["renderer-r1"]),
        spawn(["run", "projections"], cluster_env(cluster_settings,
              JETPOST_DATABASE_URL=database_url), logs["projections"]),
    ]  # fmt: skip
    for name in ("renderer", "sender-1", "sender-2", "renderer-r1"):
        await wait_logged(logs[name], "running ")
    await assert_r3(js, "after a start-up with JETPOST_NATS_REPLICAS=1")
    mark("every service runs")
    held = logs["renderer-r1"].read_text()
    assert "not applied: stream MAIL_EVT: num_replicas 3 -> 1" in held, held[-2000:]

    meter = FlowMeter(lambda: len(sink.received))
    meter.start()
    ids = [uuid.uuid4().hex for _ in range(N)]

    published: dict[str, float] = {}
    # The last commands wait for the follower's kill: mail must still be to come after
    # it (on a loaded machine the first failover's backlog once took every mail through
    # before the second kill, and "flowing again" could never be seen).
    follower_down = asyncio.Event()

    async def publish_paced() -> None:
        for i, mid in enumerate(ids):
            if i == N - TAIL:
                await follower_down.wait()
            await publish_send(js, mid)
            published[mid] = time.monotonic()
            if i % 10 == 9:
                await asyncio.sleep(0.4)  # ~25 commands/s: mail flows through both kills

    async def kill_and_restart(name: str, what: str, down: asyncio.Event | None = None) -> float:
        """kill -9 `name` (then set `down`); once mail flows again, start it again.
        Returns the kill's time."""
        killed_at = time.monotonic()
        mark(f"killing the {what} {name}")
        cluster.kill(name)
        if down is not None:
            down.set()
        await sink.wait_for(len(sink.received) + 10, timeout=60)
        mark("flowing again; restarting it")
        cluster.start_node(name)
        await cluster.wait_healthy([name])
        return killed_at

    publisher = asyncio.create_task(publish_paced())
    begun = time.monotonic()
    try:
        await sink.wait_for(N // 5, timeout=60)
        leader = await stream_leader(js, EVT_STREAM)
        killed_leader_at = await kill_and_restart(leader, "leader")
        await wait_current(js, EVT_STREAM, 3, timeout=60)

        mark("it is current")
        await sink.wait_for(N // 2, timeout=60)
        leader_now = await stream_leader(js, EVT_STREAM)
        follower = next(n.name for n in cluster.nodes if n.name != leader_now)
        at_second_kill = len(sink.received)
        killed_follower_at = await kill_and_restart(follower, "follower", follower_down)

        await publisher
        mark("all published")
        delivered = copies(sink)
        async with asyncio.timeout(120):
            while set(delivered) < set(ids):
                await sink.wait_for(len(sink.received) + 1, timeout=120)
                delivered = copies(sink)
        finished = time.monotonic()
        mark("all delivered")
    finally:
        publisher.cancel()
        await meter.stop()
    # the read models follow the log across both failovers
    delivered_rows = await read_models_caught_up(js, database_url)
    alive = [p.poll() is None for p in processes]
    await stop_all(processes)
    mark("services stopped")

    assert at_second_kill < N, "the second kill came too late to prove anything"
    assert set(delivered) == set(ids), f"{len(set(ids) - set(delivered))} mails never arrived"
    assert delivered_rows == N
    await wait_current(js, EVT_STREAM, 3, timeout=60)
    await assert_r3(js, "at the end")
    assert all(alive), [(p.args, p.returncode) for p in processes]

    attempted = await per_message(js, "attempted")
    twice = {mid: n for mid, n in delivered.items() if n > 1}
    redelivered = sum(1 for n in attempted.values() if n > 1)
    for mid, n in twice.items():  # a mail sent twice shows two attempts in the log
        assert attempted[mid] >= n, f"{mid}: {n} copies, {attempted[mid]} attempted in the log"
    first_seen: dict[str, float] = {}
    for index, mail in enumerate(sink.received):
        mid = str(email.message_from_bytes(mail.data)["X-Jetpost-Message-Id"])
        first_seen.setdefault(mid, meter.arrivals[index])
    latency = sorted(first_seen[mid] - published[mid] for mid in ids)
    stalls = {  # the longest time without a mail reaching the sink after each kill
        f"leader {leader} killed": meter.longest_pause(killed_leader_at, killed_follower_at),
        f"follower {follower} killed": meter.longest_pause(killed_follower_at, finished),
    }
    print(
        f"\n{N} mails in {finished - begun:.1f}s; "
        + "; ".join(f"{what}: longest stall {s:.2f}s" for what, s in stalls.items())
        + f"; publish-to-mail latency p50 {latency[len(latency) // 2]:.2f}s, "
        f"max {latency[-1]:.2f}s, over 10s: {sum(t > 10 for t in latency)}"
        + f"; duplicates: {sum(twice.values()) - len(twice)} (messages sent twice: {len(twice)}),"
        f" messages attempted more than once: {redelivered}"
    )
    assert max(stalls.values()) < 30, stalls  # goal 10 s; 30 would fail a full 300 s wait
