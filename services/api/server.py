"""Serving the app with uvicorn inside an asyncio loop we own, so the API stops with
everything else on Ctrl-C (the CLI's stop event), and a test can start it on a
free port and know which."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from litestar import Litestar

from services.api.app import create_public_app
from shared.settings import Settings


def listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """`reuse_port`: other sockets may bind the same port (API workers: the kernel
    spreads connections over them evenly)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets whose proto says
    # TCP (a bare socket(AF_INET) says 0), and without it a response's head and body
    # go out as two segments, the second one held by Nagle until the client's delayed
    # ACK: 40 ms per keep-alive request. Accepted sockets inherit the option on Linux.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signals belong to the CLI (services.cli.stopping); it sets our stop event.
        yield


class ApiServer:
    def __init__(
        self,
        app: Litestar,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        *,
        reuse_port: bool = False,
    ) -> None:
        """Binds `host`:`port` now (`reuse_port`: shared with other API workers)."""
        self._sock = listening_socket(host, port, reuse_port=reuse_port)
        address = self._sock.getsockname()
        self.host: str = address[0]
        self.port: int = address[1]
        # a console tab's live stream (SSE) must not hold a stop up: cut after a moment
        config = uvicorn.Config(app, log_level=log_level.lower(), log_config=None,
                                lifespan="on", access_log=False,
                                timeout_graceful_shutdown=3)  # fmt: skip
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def _serve(self) -> None:
        try:
            await self._server.serve(sockets=[self._sock])
        except SystemExit as exc:  # uvicorn's answer to a failed lifespan start-up
            raise RuntimeError("the API did not start; see the log above") from exc

    async def start(self, timeout: float = 30.0) -> str:
        """Serve in the background; returns the URL once requests are answered."""
        self._task = asyncio.create_task(self._serve())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the API stopped during start-up")
            if loop.time() > deadline:
                await self.stop()
                raise RuntimeError(f"the API did not start within {timeout}s")
            await asyncio.sleep(0.02)
        return self.url

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._sock.close()


async def serve_public(settings: Settings, stop: asyncio.Event) -> None:
    """`jetpost run public`: the tracking and unsubscribe endpoints alone, on
    JETPOST_PUBLIC_HOST:JETPOST_PUBLIC_PORT, until `stop`."""
    level = "debug" if settings.log_level.upper() == "DEBUG" else "warning"
    server = ApiServer(create_public_app(settings), settings.public_host, settings.public_port,
                       level)  # fmt: skip
    try:
        await server.start()
        await stop.wait()
    finally:
        await server.stop()
