"""A small statistical CPU profiler, used by `bench.e2e_send --sample`.

Why not cProfile alone: it instruments every call, so code made of many tiny calls
(the `email` package's header parsing, asyncio's scheduling) looks several times
costlier than it is. py-spy is not available here. And why not a sampling thread:
it only gets the GIL when the event loop releases it, which is mostly inside socket
syscalls, so `transport.write` would seem to take half the time.

So this uses SIGPROF: `setitimer(ITIMER_PROF)` fires every `interval` seconds of
this process's CPU time (user + system, not while idle in epoll), and Python runs
the handler in the main thread, between two bytecodes of whatever it was running.
Each sample is therefore one `interval` of CPU, attributed to the stack that used
it. Main thread only, Unix only; the handler costs a few percent.

Three views, as shares of the sampled CPU time:
  * by package: the innermost frame's top-level package (`email`, `nats`, `asyncio`,
    `jetpost` = services/ and shared/, ...), i.e. where the CPU actually goes;
  * by jetpost function, inclusive: every jetpost frame on the stack, i.e. what the
    CPU is spent on behalf of (the rest is framework and event loop);
  * by function, self: the innermost frame.
"""

from __future__ import annotations

import signal
import sysconfig
from collections import defaultdict
from pathlib import Path
from types import FrameType
from typing import Any

_ROOT = str(Path(__file__).resolve().parent.parent) + "/"
_PREFIXES = sorted(
    {sysconfig.get_paths()["purelib"] + "/", sysconfig.get_paths()["stdlib"] + "/"},
    key=len,
    reverse=True,
)
_OURS = ("services/", "shared/", "projections/")


def _where(frame: FrameType) -> tuple[str, str]:
    """(path relative to the repo, site-packages or the stdlib; qualified name)."""
    path = frame.f_code.co_filename
    for prefix in (*_PREFIXES, _ROOT):  # site-packages lies inside the repo (.venv)
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    return path, frame.f_code.co_qualname


def _package(path: str) -> str:
    if path.startswith(_OURS):
        return "jetpost"
    head = path.split("/", 1)[0]
    return head.removesuffix(".py") if head else path


class Sampler:
    """Samples the main thread's stack every `interval` seconds of CPU, while started."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.samples = 0
        self.self_time: dict[str, int] = defaultdict(int)
        self.inclusive: dict[str, int] = defaultdict(int)
        self.packages: dict[str, int] = defaultdict(int)
        self._previous: Any = None

    def start(self) -> None:
        """Call from the main thread."""
        self._previous = signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, self._previous or signal.SIG_DFL)

    def _sample(self, signum: int, frame: FrameType | None) -> None:
        if frame is None:
            return
        self.samples += 1
        path, name = _where(frame)
        self.self_time[f"{path}:{name}"] += 1
        self.packages[_package(path)] += 1
        seen: set[str] = set()
        current: FrameType | None = frame
        while current is not None:
            path, name = _where(current)
            if path.startswith(_OURS):
                key = f"{path}:{name}"
                if key not in seen:
                    seen.add(key)
                    self.inclusive[key] += 1
            current = current.f_back

    def report(self, top: int = 20) -> str:
        if not self.samples:
            return "sampler: no samples"
        cpu = self.samples * self.interval
        lines = [f"{self.samples} samples, about {cpu:.2f}s of CPU in this process"]
        for title, counter in (
            ("by package (innermost frame)", self.packages),
            ("by jetpost function (inclusive)", self.inclusive),
            ("by function (self)", self.self_time),
        ):
            lines.append(f"-- {title}")
            for key, count in sorted(counter.items(), key=lambda kv: -kv[1])[:top]:
                lines.append(f"  {100 * count / self.samples:5.1f}%  {key}")
        return "\n".join(lines)
