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

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.e2e_send import ROOT, BenchError, Phase, Sink, Watch
from shared.embedded import free_port


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


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


@contextlib.asynccontextmanager
async def celery_peer(sink: Sink, warmup: int, timeout: float) -> AsyncIterator[CeleryPeer]:
    """redis-server and a Celery worker, warmed up with `warmup` mails."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise BenchError("--celery needs redis-server: apt-get install redis-server")
    tmp = Path(tempfile.mkdtemp(prefix="jetpost-bench-celery-"))
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    os.environ["JETPOST_BENCH_REDIS_URL"] = url  # read by bench.celery_app at import
    os.environ["JETPOST_BENCH_SINK_PORT"] = str(sink.port)
    send = _task()
    send.app.conf.broker_url = url
    redis = await asyncio.create_subprocess_exec(
        redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(tmp),
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    worker = None
    try:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "celery", "-A", "bench.celery_app", "worker",
            "--pool", "prefork", "--concurrency", str(os.cpu_count() or 1),
            "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip",
            "--without-mingle", cwd=ROOT,
            env={**os.environ, "JETPOST_BENCH_REDIS_URL": url,
                 "JETPOST_BENCH_SINK_PORT": str(sink.port)},
        )  # fmt: skip
        peer = CeleryPeer(sink, send, timeout, {"redis-server": redis.pid}, sent=0)
        base = (await sink.stats()).count
        for i in range(warmup):
            send.delay(i)
        await sink.wait(base + warmup, timeout + 30)
        peer.sent = warmup
        for k, pid in enumerate([worker.pid, *_children(worker.pid)]):
            peer.pids[f"celery {k}"] = pid
        yield peer
    finally:
        if worker is not None:
            await _stop(worker)
        await _stop(redis)
        shutil.rmtree(tmp, ignore_errors=True)
