"""One webhook POST: through the SSRF guard, within JETPOST_WEBHOOK_TIMEOUT for the
whole exchange, no redirects followed, and at most MAX_READ bytes of the answer read
(the first KEEP kept for the delivery log)."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass

import httpcore
import httpx

from services.webhooks.ssrf import GuardedBackend, Refused, Resolver, check_url, system_resolver

KEEP = 1024
MAX_READ = 64 * 1024
# Small requests go out at once (no Nagle wait for the previous segment's ACK).
SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


@dataclass(frozen=True)
class Attempt:
    ok: bool
    status: int | None
    latency_ms: float
    response: str = ""
    error: str | None = None


def guarded_client(allow_private: bool, timeout: float,
                   resolver: Resolver = system_resolver) -> httpx.AsyncClient:  # fmt: skip
    transport = httpx.AsyncHTTPTransport(retries=0, trust_env=False)
    # The same pool httpx would build, on a network backend that checks every address.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=1024, max_keepalive_connections=256, keepalive_expiry=30.0,
        network_backend=GuardedBackend(allow_private, resolver), socket_options=SOCKET_OPTIONS,
    )  # fmt: skip
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False,
                             timeout=timeout)  # fmt: skip


async def _read_capped(response: httpx.Response) -> bytes:
    kept = bytearray()
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if len(kept) < KEEP:
            kept += chunk[: KEEP - len(kept)]
        if read >= MAX_READ:
            break  # the rest is not read: the connection is dropped, not drained
    return bytes(kept)


class Poster:
    def __init__(self, allow_private: bool, timeout: float,
                 resolver: Resolver = system_resolver) -> None:  # fmt: skip
        self.allow_private = allow_private
        self.timeout = timeout
        self.client = guarded_client(allow_private, timeout, resolver)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        started = time.perf_counter()

        def took() -> float:
            return round((time.perf_counter() - started) * 1000, 2)

        try:
            check_url(url, self.allow_private)
            async with (
                asyncio.timeout(self.timeout),
                self.client.stream("POST", url, content=body, headers=headers) as response,
            ):
                head = await _read_capped(response)
        except Refused as exc:
            return Attempt(False, None, took(), error=f"refused: {exc}")
        except TimeoutError:
            return Attempt(False, None, took(), error=f"timed out after {self.timeout:g}s")
        except httpx.HTTPError as exc:
            return Attempt(False, None, took(), error=f"{type(exc).__name__}: {exc}"[:500])
        text = head.decode("utf-8", errors="replace").replace("\0", "\ufffd")
        ok = 200 <= response.status_code < 300
        return Attempt(ok, response.status_code, took(), text)

    async def close(self) -> None:
        await self.client.aclose()
