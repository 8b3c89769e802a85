"""`jetpost run api` as an operator starts it: served on JETPOST_API_PORT, ready
against real NATS and Postgres, and stopped cleanly by Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
from nats.js import JetStreamContext

from shared.embedded import free_port
from shared.settings import Settings
from tests.conftest import service_env
from tests.integration.test_api_support import api_up


async def test_run_api_serves_and_stops_on_ctrl_c(
    settings: Settings,
    js: JetStreamContext,
    database_url: str,
    spawn: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {**service_env(settings), "JETPOST_DATABASE_URL": database_url,
           "JETPOST_API_PORT": str(port)}  # fmt: skip
    log = tmp_path / "api.log"
    child = spawn(["run", "api", "projections"], env, log)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        await api_up(client, child, log, "/readyz")
        assert (await client.get("/v1/messages")).status_code == 401
    child.send_signal(signal.SIGINT)
    code = await asyncio.to_thread(child.wait, 20)
    assert code == 0, log.read_text()
