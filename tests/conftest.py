"""Fixtures shared by integration and e2e tests: real servers on free ports in temp dirs."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
import psycopg
import pytest
from hypothesis import settings as hypothesis_settings
from hypothesis.configuration import set_hypothesis_home_dir
from nats.aio.client import Client
from nats.js import JetStreamContext
from psycopg import sql

from projections.runner import run_projections
from services.capture import CaptureSink
from services.runner import SERVICES, build_env, run_services
from shared.embedded import EmbeddedNats, embedded_postgres
from shared.migrate import migrate
from shared.nats_setup import apply_definitions, load_definitions
from shared.paths import MIGRATIONS_DIR
from shared.settings import Settings, load_settings

# (stop, started) -> the job; `started` is set once it serves
Job = Callable[[asyncio.Event, asyncio.Event], Coroutine[Any, Any, None]]

# Hypothesis keeps nothing in the repository tree (no example database, no cache),
# and its home is removed when the test process ends.
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="jetpost-hypothesis-")
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)
set_hypothesis_home_dir(_HYPOTHESIS_HOME)
hypothesis_settings.register_profile("jetpost", database=None)
hypothesis_settings.load_profile("jetpost")


@pytest.fixture(autouse=True)
def _no_developer_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the settings they give: a developer's JETPOST_* are cleared."""
    for name in [n for n in os.environ if n.startswith("JETPOST_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(store_dir=tmp_path / "nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    yield client
    await client.close()


@pytest.fixture
async def js(nc: Client, settings: Settings) -> JetStreamContext:
    context = nc.jetstream()
    await apply_definitions(context, load_definitions(settings))
    return context


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[CaptureSink]:
    capture = CaptureSink(tmp_path / "capture")
    await capture.start()
    yield capture
    await capture.stop()


@pytest.fixture
def settings(tmp_path: Path, nats_server: EmbeddedNats, sink: CaptureSink) -> Settings:
    return base_settings(nats_server.url, tmp_path, sink)


def base_settings(nats_url: str, tmp_path: Path, sink: CaptureSink, **extra: Any) -> Settings:
    """What every test's services run with: fast retries, mail to the test's sink."""
    return load_settings(
        nats_url=nats_url,
        data_dir=tmp_path / "data",
        smtp_url=f"smtp://127.0.0.1:{sink.port}",
        sender_from="jetpost tests <noreply@jetpost.test>",
        retry_base=0.2,
        retry_max=1.0,
        max_attempts=3,
        smtp_pool_size=4,
        **extra,
    )


@dataclass
class Background:
    """A job of ours in the test's event loop: started with its start-up checked (a
    failure raises here, not as a later timeout) and stopped cleanly."""

    task: asyncio.Task[None] | None = field(default=None, init=False)
    stop_event: asyncio.Event | None = field(default=None, init=False)

    async def launch(self, job: Job, what: str) -> None:
        self.stop_event, started = asyncio.Event(), asyncio.Event()
        self.task = asyncio.create_task(job(self.stop_event, started))
        ready = asyncio.create_task(started.wait())
        await asyncio.wait([self.task, ready], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self.task.done():
            self.task.result()  # start-up failed: raise its error here
        assert started.is_set(), f"{what} did not start within 30s"

    async def stop(self) -> None:
        if self.task is not None and self.stop_event is not None:
            self.stop_event.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, 20)
        self.task = None


@dataclass
class Pipeline(Background):
    """The services running in this process, started and stopped by the test."""

    settings: Settings

    async def start(self, names: tuple[str, ...] = SERVICES, **overrides: Any) -> None:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        env = build_env(settings)
        await self.launch(
            lambda stop, started: run_services(env, names, settings.nats_address, stop, started),
            "services",
        )


@pytest.fixture
async def pipeline(settings: Settings, js: JetStreamContext) -> AsyncIterator[Pipeline]:
    running = Pipeline(settings)
    await running.start()
    yield running
    await running.stop()


def service_env(settings: Settings) -> dict[str, str]:
    """The JETPOST_* environment that gives a child process these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETPOST_")}
    env.update(
        JETPOST_NATS_URL=settings.nats_address,
        JETPOST_SMTP_URL=settings.smtp_url or "",
        JETPOST_FROM=settings.sender_from,
        JETPOST_DATA_DIR=str(settings.data_dir),
        JETPOST_RETRY_BASE=str(settings.retry_base),
        JETPOST_RETRY_MAX=str(settings.retry_max),
        JETPOST_MAX_ATTEMPTS=str(settings.max_attempts),
        JETPOST_SMTP_POOL_SIZE=str(settings.smtp_pool_size),
    )
    if settings.ack_wait is not None:
        env["JETPOST_ACK_WAIT"] = str(settings.ack_wait)
    return env


JETPOST = str(Path(sys.executable).parent / "jetpost")


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `jetpost ...` child processes; every one is stopped at teardown."""
    children: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            child = subprocess.Popen([JETPOST, *args], env=env, stdout=out, stderr=out)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real PostgreSQL for the session; each test gets its own database."""
    with embedded_postgres(tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture
async def database_url(pg_server: str) -> AsyncIterator[str]:
    """A fresh, migrated database, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(pg_server, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(pg_server, name)
    await migrate(url, MIGRATIONS_DIR)
    yield url
    async with await psycopg.AsyncConnection.connect(pg_server, autocommit=True) as conn:
        await conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class Projector(Background):
    """The projection runner in this process, folding MAIL_EVT into `database_url`."""

    database_url: str
    nats_url: str

    async def start(self) -> None:
        await self.launch(
            lambda stop, started: run_projections(self.database_url, self.nats_url, stop, started),
            "projections",
        )

    async def caught_up(self, js: JetStreamContext, timeout: float = 30.0) -> None:
        """Bounded wait until every checkpoint reaches the stream's last sequence."""
        async with asyncio.timeout(timeout):
            while True:
                head = (await js.stream_info("MAIL_EVT")).state.last_seq
                async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
                    cur = await conn.execute("SELECT min(last_seq) FROM projection_checkpoints")
                    row = await cur.fetchone()
                if row is not None and row[0] is not None and row[0] >= head:
                    return
                await asyncio.sleep(0.05)


@pytest.fixture
async def projector(
    database_url: str, settings: Settings, js: JetStreamContext
) -> AsyncIterator[Projector]:
    running = Projector(database_url, settings.nats_address)
    await running.start()
    yield running
    await running.stop()
