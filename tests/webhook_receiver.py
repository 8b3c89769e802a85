"""A real HTTP receiver for outgoing webhooks (uvicorn, loopback, a free port) that
checks every request's signature with the `standardwebhooks` package, as a
customer's application would. Tests steer its answers: `ok`, `fail` (500) or `hang`."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Received:
    webhook_id: str
    body: dict[str, Any]
    headers: dict[str, str]
    answered: int


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)  # any of them must verify
    mode: Literal["ok", "fail", "hang"] = "ok"
    received: list[Received] = field(default_factory=list)  # every request, in order
    bad_signatures: int = 0
    hanging: int = 0
    url: str = ""
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    def delivered(self) -> list[Received]:
        return [r for r in self.received if r.answered == 200]

    def delivered_ids(self) -> set[str]:
        return {r.webhook_id for r in self.delivered()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if self.mode == "hang":
            self.hanging += 1
            await asyncio.Event().wait()  # until the client gives up (or we stop)
        verified = False
        for secret in self.secrets:
            try:
                Webhook(secret).verify(raw, headers)
                verified = True
            except WebhookVerificationError:
                continue
        status = 200 if self.mode == "ok" else 500
        if not verified:
            self.bad_signatures += 1
            status = 401
        self.received.append(Received(headers.get("webhook-id", ""), json.loads(raw or b"{}"),
                                      headers, status))  # fmt: skip
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"thanks" if status == 200 else b"no"})

    async def start(self) -> str:
        sock = socket.socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(self, log_config=None, log_level="warning", lifespan="off",
                                access_log=False, timeout_graceful_shutdown=1)  # fmt: skip
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        async with asyncio.timeout(10):
            while not self._server.started:  # noqa: ASYNC110 - uvicorn has no event
                await asyncio.sleep(0.01)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"
        return self.url

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            await asyncio.wait_for(self._task, 10)


async def _serve_stdio(secrets: list[str]) -> None:
    """As its own process (the benchmark): prints its URL, answers `stats` lines with
    `<requests> <delivered> <bad signatures>`, stops at the end of stdin."""
    receiver = Receiver(secrets=secrets)
    print(await receiver.start(), flush=True)
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "stats":
                print(len(receiver.received), len(receiver.delivered()),
                      receiver.bad_signatures, flush=True)  # fmt: skip
            elif line.startswith("secret "):
                receiver.secrets.append(line.split()[1])
    finally:
        await receiver.stop()


if __name__ == "__main__":
    asyncio.run(_serve_stdio(sys.argv[1:]))
