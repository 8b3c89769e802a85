"""A small statistical profiler for one thread, used by `bench.e2e_send --sample`.

Why not cProfile alone: it instruments every call, so code made of many tiny calls
(the `email` package's header parsing, asyncio's scheduling) looks several times
costlier than it is, and the rate it slows down to says little. py-spy is not
available here. This samples the event loop's thread from a helper thread
instead: each sample is the stack at that moment, weighted by the wall time since
the previous sample (the sampler waits for the GIL, ~5 ms, while the loop is busy,
but wakes at once while the loop sleeps in epoll), so shares are shares of wall time.

Three views, as percentages of the sampled wall time:
  * by package: the innermost frame's top-level package (`email`, `nats`, `asyncio`,
    `selectors` = idle in epoll, ...), i.e. where the CPU actually is;
  * by jetpost function, inclusive: every jetpost (services/, shared/) frame on the
    stack, i.e. what the time is spent on behalf of;
  * by function, self: the innermost frame.
"""

from __future__ import annotations

import sys
import sysconfig
import threading
import time
from collections import defaultdict
from pathlib import Path
from types import FrameType

_ROOT = str(Path(__file__).resolve().parent.parent) + "/"
_PREFIXES = sorted(
    {sysconfig.get_paths()["purelib"] + "/", sysconfig.get_paths()["stdlib"] + "/"},
    key=len,
    reverse=True,
)
_OURS = ("services/", "shared/")


def _where(frame: FrameType) -> tuple[str, str]:
    """(path relative to the repo, site-packages or the stdlib; qualified name)."""
    path = frame.f_code.co_filename
    for prefix in (_ROOT, *_PREFIXES):
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
    """Samples `thread_id`'s stack every `interval` seconds while started."""

    def __init__(self, thread_id: int | None = None, interval: float = 0.001) -> None:
        self.thread_id = thread_id if thread_id is not None else threading.get_ident()
        self.interval = interval
        # seconds of wall time per key (Counter[str] is typed for int counts)
        self.self_time: dict[str, float] = defaultdict(float)
        self.inclusive: dict[str, float] = defaultdict(float)
        self.packages: dict[str, float] = defaultdict(float)
        self.total = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.wait(self.interval):
            frame = sys._current_frames().get(self.thread_id)
            now = time.perf_counter()
            weight, last = now - last, now
            if frame is not None:
                self._record(frame, weight)

    def _record(self, frame: FrameType, weight: float) -> None:
        self.samples += 1
        self.total += weight
        path, name = _where(frame)
        self.self_time[f"{path}:{name}"] += weight
        self.packages[_package(path)] += weight
        seen: set[str] = set()
        current: FrameType | None = frame
        while current is not None:
            path, name = _where(current)
            if path.startswith(_OURS):
                key = f"{path}:{name}"
                if key not in seen:
                    seen.add(key)
                    self.inclusive[key] += weight
            current = current.f_back

    def report(self, top: int = 20) -> str:
        if not self.total:
            return "sampler: no samples"
        lines = [f"sampled {self.samples} stacks over {self.total:.2f}s of wall time"]
        for title, counter in (
            ("by package (innermost frame)", self.packages),
            ("by jetpost function (inclusive)", self.inclusive),
            ("by function (self)", self.self_time),
        ):
            lines.append(f"-- {title}")
            for key, weight in sorted(counter.items(), key=lambda kv: -kv[1])[:top]:
                lines.append(f"  {100 * weight / self.total:5.1f}%  {key}")
        return "\n".join(lines)
