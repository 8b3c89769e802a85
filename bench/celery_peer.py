"""Phase (d) of `bench.e2e_send --celery`: the issue's peer, Celery + Redis + smtplib,
sending the same mail to the same sink in the same rounds.

A redis-server (no snapshots, in a temp dir) and a Celery worker (`bench.celery_app`,
prefork pool, one process per CPU, prefetch 16, no heartbeat, gossip or mingle: the
usual throughput settings) run as child processes; this process queues one task per
mail (`send_welcome.delay(i)`), and a block ends when the sink has every mail. The
CPU lines count the worker's processes and redis-server.

Needs what the tests do not: `apt-get install redis-server` and
`.venv/bin/pip install -r bench/requirements-peer.txt`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bench.api import process
from bench.measure import BenchError, Phase, Sink, Watch
from shared.embedded import free_port
from tests.processes import children


@dataclass
class CeleryPeer:
    sink: Sink
    send: Any  # the Celery task
    timeout: float
    pids: dict[str, int]  # the worker's processes and redis-server, for the CPU lines
    sent: int = 0

    async def block(self, n: int, watch: Watch) -> Phase:
        numbers = range(self.sent, self.sent + n)
        self.sent += n
        before = await self.sink.stats()
        watch.start()
        start = time.monotonic()
        for i in numbers:
            self.send.delay(i)
        after = await self.sink.wait(before.count + n, self.timeout)
        cpu = watch.stop()
        return Phase("celery", n, after.stamp - start, after.bytes - before.bytes, cpu)


def _task() -> Any:
    try:
        from bench.celery_app import SEND
    except ImportError as exc:
        raise BenchError(
            f"--celery needs Celery: .venv/bin/pip install -r bench/requirements-peer.txt ({exc})"
        ) from None
    return SEND


@contextlib.asynccontextmanager
async def celery_peer(sink: Sink, warmup: int, timeout: float) -> AsyncIterator[CeleryPeer]:
    """redis-server and a Celery worker, warmed up with `warmup` mails."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise BenchError("--celery needs redis-server: apt-get install redis-server")
    send = _task()
    port = free_port()
    url = send.app.conf.broker_url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "JETPOST_BENCH_REDIS_URL": url, "JETPOST_BENCH_SINK_PORT": str(sink.port)}
    with tempfile.TemporaryDirectory(prefix="jetpost-bench-celery-") as tmp:
        async with (
            process(redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", tmp) as redis,
            process(sys.executable, "-m", "celery", "-A", "bench.celery_app", "worker",
                    "--pool", "prefork", "--concurrency", str(os.cpu_count() or 1),
                    "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip",
                    "--without-mingle", env=env, quiet=False) as worker,
        ):  # fmt: skip
            base = (await sink.stats()).count
            for i in range(warmup):
                send.delay(i)
            await sink.wait(base + warmup, timeout + 30)
            pids = {"redis-server": redis.pid}
            for k, pid in enumerate([worker.pid, *children(worker.pid)]):
                pids[f"celery {k}"] = pid
            yield CeleryPeer(sink, send, timeout, pids, sent=warmup)
