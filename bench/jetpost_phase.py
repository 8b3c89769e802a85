"""Phase (b) of `bench.e2e_send`: jetpost end to end. Send commands published to
`mail.cmd.send`, taken through intake, renderer and sender (in this process, or in
`jetpost run` children) to the sink; a block ends when the sink has its last mail."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import nats
import nats.errors

from bench.measure import ROOT, BenchError, Phase, Sink, Watch, stop_process
from bench.raw_smtp import SENDER
from services.cli.pipeline_workers import APART, layout
from services.runner import SERVICES, build_env, run_services
from shared.settings import load_settings
from shared.subjects import CMD_SEND, CMD_STREAM, EVT_STREAM, event_filter
from tests.processes import children as children_of

PUBLISH_WINDOW = 256  # send commands in flight at once

T = TypeVar("T")


def command(i: int) -> bytes:
    return json.dumps(
        {
            "to": f"user{i}@example.com",
            "template": "welcome",
            "vars": {"name": f"User {i}"},
            "message_id": uuid.uuid4().hex,
        }
    ).encode()


async def publish(
    js: Any, bodies: Sequence[bytes], subject: str = CMD_SEND, stream: str = CMD_STREAM
) -> None:
    """PUBLISH_WINDOW commands in flight at a time, each acked."""
    for k in range(0, len(bodies), PUBLISH_WINDOW):
        chunk = bodies[k : k + PUBLISH_WINDOW]
        await asyncio.gather(*(js.publish(subject, b, stream=stream) for b in chunk))


async def delivered_count(nc: Any) -> int:
    """Messages with a `delivered` event in MAIL_EVT (distinct subjects), read page by
    page: the server lists a limited number of subjects per STREAM.INFO reply."""
    subjects: set[str] = set()
    while True:
        request = {"subjects_filter": event_filter("delivered"), "offset": len(subjects)}
        reply = await nc.request(
            f"$JS.API.STREAM.INFO.{EVT_STREAM}", json.dumps(request).encode(), timeout=10
        )
        info = json.loads(reply.data)
        if "error" in info:
            raise BenchError(f"STREAM.INFO {EVT_STREAM}: {info['error']}")
        page = info.get("state", {}).get("subjects") or {}
        subjects.update(page)
        if not page or len(subjects) >= info.get("total", 0):
            return len(subjects)


async def guarded(work: Awaitable[T], services: asyncio.Task[None]) -> T:
    """`work`, unless the services stop first (then their error, or a BenchError)."""
    job = asyncio.ensure_future(work)
    try:
        await asyncio.wait([job, services], return_when=asyncio.FIRST_COMPLETED)
        if job.done():
            return job.result()
        services.result()  # raises what stopped them
        raise BenchError("services stopped during the run")
    finally:
        if not job.done():
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError, BenchError):
                await job


async def await_delivered(nc: Any, expected: int, services: asyncio.Task[None]) -> int:
    """The sink has a mail before its `delivered` event is appended: allow a moment."""
    deadline = time.monotonic() + 30
    while True:
        count = await guarded(delivered_count(nc), services)
        if count >= expected or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.1)


PIPELINE = ("intake", "renderer", "sender")
WORKER = "services.cli.main run"  # the command line of a pipeline worker process


def sender_processes(workers: int) -> int:
    """How many processes of one `jetpost run intake renderer sender` with
    JETPOST_PIPELINE_WORKERS=`workers` run the sender (services.cli.pipeline_workers)."""
    here, apart = layout(PIPELINE, workers)
    return (APART in here) + (workers - 1 if APART in apart else 0)


async def _until_pulling(nats_url: str, children: Sequence[Any], workers: int) -> list[int]:
    """Until each process has its `workers` - 1 pipeline workers and every process
    that runs the sender asks its consumer for mail (or one exits): their pids."""
    senders = len(children) * sender_processes(workers)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(child.returncode is not None for child in children):
                raise BenchError("a jetpost process exited while starting")
            grandchildren = [pid for child in children for pid in children_of(child.pid, WORKER)]
            with contextlib.suppress(nats.errors.Error):
                waiting = (await js.consumer_info(EVT_STREAM, "sender")).num_waiting
                if waiting >= senders and len(grandchildren) == len(children) * (workers - 1):
                    return grandchildren
            await asyncio.sleep(0.2)
        raise BenchError("the jetpost processes did not start within 60 s")
    finally:
        await nc.close()


async def _child_services(
    env: dict[str, str], processes: int, workers: int, stop: asyncio.Event,
    started: asyncio.Event, pids: dict[str, int],
) -> None:  # fmt: skip
    """`jetpost run intake renderer sender` in `processes` child processes, sharing the
    durable consumers, until `stop`; an exit before that is an error. Each starts its
    `workers` - 1 pipeline workers (JETPOST_PIPELINE_WORKERS in `env`; their pids too)."""
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli.main", "run", *PIPELINE, env=env, cwd=ROOT
        )
        for _ in range(processes)
    ]
    for k, child in enumerate(children):
        pids[f"jetpost {k + 1}"] = child.pid
    try:
        found = await _until_pulling(env["JETPOST_NATS_URL"], children, workers)
        for k, pid in enumerate(found):
            pids[f"worker {k + 1}"] = pid
        started.set()
        waits = [asyncio.ensure_future(child.wait()) for child in children]
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([*waits, stopped], return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            raise BenchError(f"a jetpost process exited ({[c.returncode for c in children]})")
    finally:
        await asyncio.gather(*(stop_process(child, 15) for child in children))


@dataclass
class Jetpost:
    """(b): the pipeline running and warmed up; `published` commands so far."""

    sink: Sink
    nc: Any
    services: asyncio.Task[None]
    timeout: float
    published: int

    async def block(self, n: int, watch: Watch) -> Phase:
        bodies = [command(i) for i in range(self.published, self.published + n)]
        self.published += n
        before = await self.sink.stats()
        js = self.nc.jetstream()
        watch.start()
        start = time.monotonic()
        await guarded(publish(js, bodies), self.services)
        after = await guarded(self.sink.wait(before.count + n, self.timeout), self.services)
        cpu = watch.stop()
        return Phase("jetpost", n, after.stamp - start, after.bytes - before.bytes, cpu)

    async def verify(self) -> None:
        """Every command has its `delivered` event in MAIL_EVT."""
        delivered = await await_delivered(self.nc, self.published, self.services)
        if delivered != self.published:
            raise BenchError(
                f"{delivered} `delivered` events in {EVT_STREAM} for {self.published} mails sent"
            )


@contextlib.asynccontextmanager
async def jetpost_running(
    sink: Sink,
    nats_url: str,
    data_dir: Path,
    connections: int,
    warmup: int,
    timeout: float,
    pids: dict[str, int],
    processes: int = 0,
    workers: int = 1,
) -> AsyncIterator[Jetpost]:
    """Intake, renderer and sender in this process (or `processes` children, each with
    JETPOST_PIPELINE_WORKERS=`workers`, whose pids are added to `pids`), warmed up with
    `warmup` mails."""
    senders = max(processes, 1) * sender_processes(workers)
    pool = max(1, connections // senders)  # the same connections in all
    settings = load_settings(
        nats_url=nats_url,
        smtp_url=f"smtp://127.0.0.1:{sink.port}",
        smtp_pool_size=pool,
        data_dir=data_dir,
        sender_from=SENDER,
    )
    stop, started = asyncio.Event(), asyncio.Event()
    if processes:
        env = {**os.environ, "JETPOST_NATS_URL": nats_url, "JETPOST_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
               "JETPOST_SMTP_POOL_SIZE": str(pool), "JETPOST_DATA_DIR": str(data_dir),
               "JETPOST_SENDER_FROM": SENDER, "JETPOST_LOG_LEVEL": "WARNING",
               "JETPOST_PIPELINE_WORKERS": str(workers)}  # fmt: skip
        services = asyncio.create_task(
            _child_services(env, processes, workers, stop, started, pids)
        )
    else:
        services = asyncio.create_task(
            run_services(build_env(settings), SERVICES, nats_url, stop, started)
        )
    nc = None
    try:
        await guarded(asyncio.wait_for(started.wait(), 30), services)
        # FastStream's INFO lines ("callback for Task-N is being executed...") would
        # end up between the figures; its warnings and errors still show.
        logging.getLogger("faststream.access.nats").setLevel(logging.WARNING)
        nc = await nats.connect(nats_url, max_reconnect_attempts=1)
        base = (await sink.stats()).count
        await guarded(publish(nc.jetstream(), [command(i) for i in range(warmup)]), services)
        await guarded(sink.wait(base + warmup, timeout + 30), services)
        if (got := await await_delivered(nc, warmup, services)) != warmup:
            raise BenchError(f"warm-up: {got} delivered events for {warmup} mails")
        yield Jetpost(sink, nc, services, timeout, warmup)
    finally:
        if nc is not None:
            await nc.close()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(services, 30)
