"""The API's speed work keeps its promises against real servers: no Nagle stall on
keep-alive answers, a key revoked in Postgres refused at once despite the key cache,
and `JETPOST_API_WORKERS` processes that start and stop as one."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
from litestar import Litestar, get
from nats.js import JetStreamContext

from services.api.app import create_app
from services.api.keys import create_key
from services.api.server import ApiServer
from shared.embedded import free_port
from shared.settings import Settings
from tests.conftest import Pipeline, service_env
from tests.integration.test_api_support import api_up, assert_problem, eventually
from tests.processes import alive, children

WORKER = "services.api.workers"  # the command line of an API worker process


async def test_answers_leave_without_waiting_for_the_clients_ack() -> None:
    @get("/", sync_to_thread=False)
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    server = ApiServer(Litestar([hello], openapi_config=None), "127.0.0.1", 0)
    try:
        listening = server._sock
        # asyncio sets TCP_NODELAY on accepted sockets only when the proto says TCP;
        # without it each keep-alive answer waited 40 ms for the client's delayed ACK
        assert listening.proto == socket.IPPROTO_TCP
        assert listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        url = await server.start()
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(3):  # one keep-alive connection
                assert (await client.get("/")).json() == {"hello": "world"}
    finally:
        await server.stop()


async def test_a_key_revoked_in_postgres_is_refused_at_once_despite_the_cache(
    pipeline: Pipeline, settings: Settings, database_url: str
) -> None:
    # a key cache that, on its own, would trust a key for an hour
    cached = settings.model_copy(update={"database_url": database_url,
                                         "api_key_cache_ttl": 3600.0})  # fmt: skip
    server = ApiServer(create_app(cached), "127.0.0.1", 0)
    url = await server.start()
    try:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            _, secret = await create_key(conn, ["read"], "soon-revoked")
            headers = {"Authorization": f"Bearer {secret}"}
            async with httpx.AsyncClient(base_url=url, headers=headers) as client:
                assert (await client.get("/v1/templates")).status_code == 200  # now cached
                # plain SQL, as an operator might: the database announces the change
                await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE name = %s",
                                   ("soon-revoked",))  # fmt: skip

                async def refused() -> bool:
                    return (await client.get("/v1/templates")).status_code == 401

                await eventually(refused, "the revoked key to be refused", timeout=10)
                assert_problem(await client.get("/v1/templates"), 401)
    finally:
        await server.stop()


@pytest.mark.slow
async def test_api_workers_serve_one_port_and_stop_together(
    settings: Settings,
    js: JetStreamContext,
    database_url: str,
    spawn: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {**service_env(settings), "JETPOST_DATABASE_URL": database_url,
           "JETPOST_API_PORT": str(port), "JETPOST_API_WORKERS": "2"}  # fmt: skip
    log = tmp_path / "api.log"
    api = spawn(["run", "api"], env, log)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        await api_up(client, api, log)
        (worker,) = children(api.pid, WORKER)
        # fresh connections, spread by the kernel over both processes: all answered
        for _ in range(8):
            # a worker's first answers under a loaded CI machine may take seconds
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as fresh:
                assert (await fresh.get("/v1/messages")).status_code == 401
    api.send_signal(signal.SIGINT)
    assert await asyncio.to_thread(api.wait, 60) == 0, log.read_text()

    async def gone() -> bool:
        return not alive(worker)

    await eventually(gone, "the worker to stop with the first", timeout=60)

    # a worker that dies on its own stops the whole, for the supervisor to restart
    again = spawn(["run", "api"], {**env, "JETPOST_API_PORT": str(free_port())}, log)

    async def started() -> list[int]:
        if again.poll() is not None:
            raise AssertionError(log.read_text())
        # not the `ldconfig -p` its imports run: killing that one would stop nothing
        return children(again.pid, WORKER)

    (worker,) = await eventually(started, "the second worker to start")
    os.kill(worker, signal.SIGKILL)
    assert await asyncio.to_thread(again.wait, 60) != 0
    assert "an API worker exited" in log.read_text()
