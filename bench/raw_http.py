"""The raw HTTP limits of the API benchmark, each served in its own process:

- `asyncio`: a bare asyncio protocol answering every request with a fixed small JSON
  body (no framework, no parsing past the blank line): what this machine's Python can
  answer at all, and a check that the load generator is not the bottleneck;
- `litestar`: a one-route Litestar app returning a small dict, served exactly as
  `jetpost run api` serves the API (`services.api.server.ApiServer`: same server, loop
  and HTTP parser): the framework's floor, before jetpost adds auth, Postgres or NATS.

    python -m bench.raw_http asyncio|litestar PORT
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import cast

BODY = b'{"id":"0123456789abcdef0123456789abcdef","status":"delivered"}'
ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


class _Responder(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:  # the client sends no body
            self.buffer = self.buffer[end + 4 :]
            self.transport.write(ANSWER)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve_asyncio(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Responder, "127.0.0.1", port)
    async with server:
        await _until_signalled()


async def serve_litestar(port: int) -> None:
    from litestar import Litestar, get

    from services.api.server import ApiServer

    @get("/", sync_to_thread=False)
    def hello() -> dict[str, str]:
        return {"id": "0123456789abcdef0123456789abcdef", "status": "delivered"}

    server = ApiServer(Litestar([hello], openapi_config=None, logging_config=None),
                       "127.0.0.1", port)  # fmt: skip
    await server.start()
    try:
        await _until_signalled()
    finally:
        await server.stop()


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    serve = {"asyncio": serve_asyncio, "litestar": serve_litestar}[kind]
    from shared.event_loop import run_loop

    run_loop(serve(port))


if __name__ == "__main__":
    main()
