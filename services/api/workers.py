"""`JETPOST_API_WORKERS=N`: `jetpost run api` answers on N processes sharing one
port, so every core of the machine serves requests (Python runs one core per process).

The process `jetpost run api` starts binds the port and serves as the first worker; it
starts N-1 more (`python -m services.api.workers HOST PORT`), each building the same
app from the same JETPOST_* environment and binding the same port with SO_REUSEPORT:
the kernel spreads new connections evenly over them (a socket shared by inheritance
would hand a burst of connections to whichever process woke first). Each worker has
its own Postgres pool (JETPOST_API_POOL_SIZE), NATS connection and key cache (kept
true by its own LISTEN), and its own in-memory limits (failed-key rate, tracking-hit
windows), so those count per worker. The workers stop with the first (SIGTERM; SIGTERM
from the kernel should it die), and one that exits on its own stops the whole, for
the supervisor to restart.
"""

from __future__ import annotations

import contextlib
import logging
import sys

from services.api.app import create_app
from services.api.server import ApiServer
from services.cli.stopping import stop_on_signals
from services.worker_processes import WorkerProcesses
from shared.collector import freeze_start_up
from shared.event_loop import run_loop
from shared.logs import configure_logging
from shared.settings import load_settings

log = logging.getLogger("jetpost.api")


def api_workers(host: str, port: int, count: int) -> WorkerProcesses:
    """The `count` other worker processes of an API whose first worker is this process."""
    argv = [sys.executable, "-m", "services.api.workers", host, str(port)]
    return WorkerProcesses("an API worker", argv, count)


async def _serve(host: str, port: int) -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    stop = stop_on_signals()
    level = "debug" if settings.log_level.upper() == "DEBUG" else "warning"
    server = ApiServer(create_app(settings), host, port, level, reuse_port=True)
    try:
        await server.start()
        freeze_start_up()
        await stop.wait()
    finally:
        await server.stop()


def main() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(_serve(sys.argv[1], int(sys.argv[2])))


if __name__ == "__main__":
    main()
