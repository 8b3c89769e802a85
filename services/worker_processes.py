"""More processes doing what this one does, so every core works (Python runs one core
per process): `JETPOST_API_WORKERS` (services.api.workers) and
`JETPOST_PIPELINE_WORKERS` (services.cli.pipeline_workers).

A group is N child processes started with one command line. They get SIGTERM when
the group stops, and from the kernel should this process die (even by SIGKILL), so
none outlives it; `exited` raises once any of them exits on its own.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Mapping, Sequence

from shared.embedded import _die_with_parent


class WorkerProcesses:
    def __init__(
        self,
        label: str,
        argv: Sequence[str],
        count: int,
        env: Callable[[int], Mapping[str, str]] | None = None,
    ) -> None:
        """`label` names one in errors ("an API worker"); `env` makes worker k's
        environment (k from 1 to `count`; None: this process's)."""
        self.label, self.argv, self.count = label, list(argv), count
        self.env = env
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        for k in range(1, self.count + 1):
            env = dict(self.env(k)) if self.env is not None else None
            self.processes.append(await asyncio.create_subprocess_exec(
                *self.argv, env=env, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            ))  # fmt: skip

    async def exited(self) -> None:
        """Raises when any worker has exited (never returns; waits for ever with none)."""
        if not self.processes:
            await asyncio.Event().wait()
        waits = [asyncio.create_task(p.wait()) for p in self.processes]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        codes = [p.returncode for p in self.processes if p.returncode is not None]
        raise RuntimeError(f"{self.label} exited (status {codes[0]})")

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to each (they finish what they hold), SIGKILL after `timeout`."""
        for process in self.processes:
            if process.returncode is None:
                process.terminate()
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                process.kill()
                await process.wait()
        self.processes.clear()
