"""Fixtures and helpers for the HTTP API tests (no tests of its own): the real app
served by uvicorn on a free port, over the `pipeline` (real NATS, services, SMTP
sink) and a fresh migrated database; keys are made the way `jetpost keys` does."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from services.api.app import create_app
from services.api.keys import create_key
from services.api.server import ApiServer
from shared.settings import Settings
from tests.conftest import Pipeline

PROBLEM = "application/problem+json"


@dataclass
class Api:
    url: str
    client: httpx.AsyncClient
    settings: Settings
    database_url: str

    async def key(self, *scopes: str, name: str = "test") -> str:
        async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
            _, secret = await create_key(conn, scopes, name)
        return secret

    async def as_(self, *scopes: str) -> dict[str, str]:
        """Headers of a fresh key with these scopes."""
        return {"Authorization": f"Bearer {await self.key(*scopes)}"}


async def start_api(settings: Settings, database_url: str) -> tuple[ApiServer, Api]:
    app_settings = settings.model_copy(
        update={"database_url": database_url, "api_timeout": 2.0, "api_key_cache_ttl": 0.0}
    )
    server = ApiServer(create_app(app_settings), "127.0.0.1", 0)
    url = await server.start()
    client = httpx.AsyncClient(base_url=url, timeout=15)
    return server, Api(url, client, app_settings, database_url)


@pytest.fixture(name="api")
async def api_fixture(
    pipeline: Pipeline, settings: Settings, database_url: str
) -> AsyncIterator[Api]:
    server, api = await start_api(settings, database_url)
    yield api
    await api.client.aclose()
    await server.stop()


def assert_problem(response: httpx.Response, status: int | tuple[int, ...]) -> dict[str, Any]:
    expected = status if isinstance(status, tuple) else (status,)
    assert response.status_code in expected, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    assert body["title"] and body["type"] and body["detail"], body
    return body


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 30.0) -> Any:
    """Bounded polling: the first truthy result of `check`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {result!r}")
        await asyncio.sleep(0.05)


async def api_up(client: httpx.AsyncClient, proc: subprocess.Popen[bytes], log: Path,
                 path: str = "/healthz") -> None:  # fmt: skip
    """Bounded wait for a `jetpost run api` child to answer 200 on `path`; its log if it
    exits first."""

    async def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(await asyncio.to_thread(log.read_text))
        try:
            return (await client.get(path)).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(ready, "jetpost run api to be ready")
