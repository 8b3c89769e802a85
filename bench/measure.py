"""What the benchmarks measure with: a phase's figures, CPU meters (and profilers)
around it, and the `bench.sink` child process the mail goes to."""

from __future__ import annotations

import asyncio
import cProfile
import io
import os
import pstats
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.sampler import Sampler

ROOT = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    """Lost mail, a timeout or a crashed service: the figures would mean nothing."""


@dataclass(frozen=True)
class Phase:
    name: str
    mails: int
    seconds: float
    bytes: int  # as received by the sink
    cpu: dict[str, float]  # CPU seconds used during the phase, per process

    @property
    def rate(self) -> float:
        return self.mails / self.seconds

    @property
    def avg_bytes(self) -> int:
        return self.bytes // self.mails


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of another process so far (Linux /proc); 0.0 if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()  # after "(comm)", which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Watch:
    """CPU meters (always) and profilers (when asked for) around one measured phase."""

    label: str
    pids: dict[str, int]  # other processes to meter, by name
    profile: Path | None = None
    sample: bool = False
    _cpu: dict[str, float] = field(default_factory=dict)
    _profiler: cProfile.Profile | None = None
    _sampler: Sampler | None = None

    def start(self) -> None:
        if self.sample:
            self._sampler = Sampler()
            self._sampler.start()
        if self.profile is not None:
            self._profiler = cProfile.Profile()
            self._profiler.enable()
        self._cpu = self._read()

    def stop(self) -> dict[str, float]:
        end = self._read()
        if self._profiler is not None:
            self._profiler.disable()
            assert self.profile is not None
            report_profile(self._profiler, self.profile, self.label)
        if self._sampler is not None:
            self._sampler.stop()
            print(f"== sampled profile of phase {self.label}", file=sys.stderr)
            print(self._sampler.report(), file=sys.stderr)
        return {name: end[name] - self._cpu[name] for name in end}

    def _read(self) -> dict[str, float]:
        cpu = {"bench process": time.process_time()}
        cpu.update({name: cpu_seconds(pid) for name, pid in self.pids.items()})
        return cpu


async def stop_process(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited after `grace` seconds."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        process.kill()
        await process.wait()


@dataclass(frozen=True)
class SinkState:
    count: int
    bytes: int
    stamp: float = 0.0  # time.monotonic() when the awaited mail arrived


class Sink:
    """The `bench.sink` child process and its line protocol (see that module)."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port

    @classmethod
    async def start(cls, timeout: float = 20.0) -> Sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.sink", "--port", "0",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )  # fmt: skip
        sink = cls(process, 0)
        try:
            words = await sink._read(timeout)
            if words[:1] != ["ready"]:
                raise BenchError(f"sink: unexpected first line {words!r}")
        except BaseException:
            await sink.close()
            raise
        sink.port = int(words[1])
        return sink

    async def wait(self, count: int, timeout: float) -> SinkState:
        """Until the sink holds `count` mails in all; the stamp is the count-th's arrival."""
        words = await self._ask(f"wait {count} {timeout}", timeout + 10)
        if words[0] != "done":
            raise BenchError(
                f"sink has {words[1]} of {count} mails after {timeout}s: mail lost "
                "(or too slow for --timeout)"
            )
        return SinkState(int(words[1]), int(words[3]), float(words[2]))

    async def stats(self) -> SinkState:
        words = await self._ask("stats", 10)
        return SinkState(int(words[1]), int(words[2]))

    async def close(self) -> None:
        process = self.process
        if process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()  # end of input: the sink stops by itself
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            await stop_process(process, 5)

    async def _ask(self, line: str, timeout: float) -> list[str]:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        return await self._read(timeout)

    async def _read(self, timeout: float) -> list[str]:
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            raise BenchError(f"sink did not answer within {timeout}s") from None
        if not line:
            raise BenchError(f"sink exited (status {await self.process.wait()})")
        return line.decode().split()


def report_profile(profiler: cProfile.Profile, path: Path, label: str) -> None:
    profiler.dump_stats(path)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    print(out.getvalue(), file=sys.stderr)
    print(f"cProfile of phase {label} written to {path} (it slows the phase)", file=sys.stderr)
