"""`JETPOST_PIPELINE_WORKERS=N`: the pipeline services a `jetpost run` or `jetpost dev`
process runs (intake, renderer, sender...) run in N processes, so both cores of a
2-core machine work (bench.e2e_send --workers shows the scaling).

With the sender among other services, the sender runs apart: this process runs the
others and the N-1 children run the sender (`layout`). Its SMTP sessions wait on the
network, and in a loop shared with intake and the renderer every reply waited behind
their work: in `bench.e2e_send` on 2 cores, a burst of mail was taken in at about
3,000 commands/s while about 500 mails/s left, and the sender went at its own pace
only once the others were done. Apart, the operating system shares the cores between
them. Without the sender (or with it alone), the N processes run the same services.

The N-1 others are `jetpost run <services>` children, built from this process's
environment plus what it resolved (`jetpost dev`'s embedded NATS, database and
capture sink). Their consumers are the same durable pull consumers, so each message
goes to one process; at-least-once delivery and every ack rule are unchanged. They
stop with this process (SIGTERM: each finishes what it holds). One that exits on its
own fails this job, which the supervisor restarts with the others (all of them).
Child k serves its own /metrics on JETPOST_METRICS_PORT + k (the sender's counts are
there, with the sender apart).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence

from services.worker_processes import WorkerProcesses
from shared.settings import Settings

NOT_INHERITED = ("JETPOST_METRICS_PORT",)  # one process per port: child k gets its own
APART = "sender"  # the service that waits on the network: a process of its own


def layout(names: Sequence[str], workers: int) -> tuple[list[str], list[str]]:
    """(the services this process runs, those its `workers` - 1 children run). Pure."""
    if workers <= 1 or not names:
        return list(names), []
    if APART in names and len(names) > 1:
        return [n for n in names if n != APART], [APART]
    return list(names), list(names)


def child_env(settings: Settings, environ: Mapping[str, str], k: int = 1) -> dict[str, str]:
    """The environment of child k: ours, with the addresses this process resolved, no
    further children of its own, and its /metrics on JETPOST_METRICS_PORT + k (0 stays
    0: any free port) when this process serves one."""
    env = {key: v for key, v in environ.items() if key not in NOT_INHERITED}
    env["JETPOST_PIPELINE_WORKERS"] = "1"
    port = settings.metrics_port
    if port is not None and port + k <= 65535:
        env["JETPOST_METRICS_PORT"] = str(port + k if port else 0)
    resolved = {"JETPOST_NATS_URL": settings.nats_url, "JETPOST_SMTP_URL": settings.smtp_url,
                "JETPOST_DATABASE_URL": settings.database_url}  # fmt: skip
    env.update({name: value for name, value in resolved.items() if value})
    return env


async def run_pipeline_workers(
    settings: Settings, names: Sequence[str], stop: asyncio.Event
) -> None:
    """Keep JETPOST_PIPELINE_WORKERS - 1 children running `names` until `stop`; raises
    if one exits on its own."""
    argv = [sys.executable, "-m", "services.cli.main", "run", *names]
    group = WorkerProcesses("a pipeline worker", argv, settings.pipeline_workers - 1,
                            lambda k: child_env(settings, os.environ, k))  # fmt: skip
    await group.start()
    exited = asyncio.create_task(group.exited())
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([exited, stopped], return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            exited.result()
    finally:
        exited.cancel()
        stopped.cancel()
        await group.stop()
