"""pg-bridge against real servers: an application database of its own (a dedicated
PostgreSQL, so it can be stopped and started under the running bridge), NATS, the
pipeline and the SMTP sink. Every row becomes exactly one message; none is lost to a
database restart, a bridge restart or a transaction that commits late."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from nats.js import JetStreamContext
from psycopg import sql
from psycopg.conninfo import make_conninfo

from services.bridge.bridge import Bridge, BridgeConfig
from services.bridge.cursor import CURSOR_BUCKET
from services.bridge.logic import cursor_key, message_id
from services.capture import CaptureSink
from shared.paths import ROOT
from shared.settings import Settings
from tests.conftest import Pipeline, service_env
from tests.eventlog_reader import read_all, wait_for_count, wait_for_event
from tests.integration.test_pipeline import parse_mail

BRIDGE_SQL = (ROOT / "sql" / "pg_bridge.sql").read_text()
Row = tuple[str, str, str | None, str | None, str | None]  # action, email, username, code, secret


@dataclass
class AppServer:
    """A PostgreSQL of its own playing the application's database server."""

    server: Any  # pgserver.PostgresServer

    @property
    def url(self) -> str:
        return str(self.server.get_uri())

    def stop(self) -> None:
        """A real shutdown (fast: open connections are closed), as for a restart."""
        subprocess.run(
            [str(pg_bin() / "pg_ctl"), "-D", str(self.server.pgdata), "-w", "-m", "fast", "stop"],
            check=True, capture_output=True, user=self.server.system_user, timeout=60,
        )  # fmt: skip

    def start(self) -> None:
        self.server.ensure_postgres_running()


def pg_bin() -> Path:
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

    server = get_server(tmp_path_factory.mktemp("appdb"), cleanup_mode="stop")
    try:
        yield AppServer(server)
    finally:
        server._cleanup()


@dataclass
class AppDatabase:
    """One application database with sql/pg_bridge.sql applied; the app writes as the
    superuser, the bridge reads as `mailer`, a role with nothing but SELECT."""

    server: AppServer
    name: str

    @property
    def url(self) -> str:
        return make_conninfo(self.server.url, dbname=self.name)

    @property
    def mailer_url(self) -> str:
        return make_conninfo(self.server.url, dbname=self.name, user="mailer")

    async def admin(self, statement: sql.Composed | str) -> None:
        async with await psycopg.AsyncConnection.connect(self.server.url, autocommit=True) as conn:
            await conn.execute(statement)

    async def insert(self, rows: list[Row]) -> list[int]:
        """The rows in one transaction, as an application would; their ids."""
        async with await psycopg.AsyncConnection.connect(self.url) as conn:
            ids = []
            for values in rows:
                cur = await conn.execute(
                    "INSERT INTO jetpost_outbox (action, email, username, code, secret)"
                    " VALUES (%s, %s, %s, %s, %s) RETURNING id", values,
                )  # fmt: skip
                fetched = await cur.fetchone()
                assert fetched is not None
                ids.append(int(fetched[0]))
            return ids

    async def bridge_connections(self) -> int:
        async with await psycopg.AsyncConnection.connect(self.url) as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'jetpost-pg-bridge'"
            )
            fetched = await cur.fetchone()
        return int(fetched[0]) if fetched else 0


@pytest.fixture
async def app_db(app_server: AppServer) -> AsyncIterator[AppDatabase]:
    db = AppDatabase(app_server, f"shop_{uuid.uuid4().hex[:8]}")
    await db.admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db.name)))
    await db.admin("DO $$ BEGIN CREATE ROLE mailer LOGIN; "
                   "EXCEPTION WHEN duplicate_object THEN NULL; END $$")  # fmt: skip
    await db.admin("ALTER ROLE mailer LOGIN")
    async with await psycopg.AsyncConnection.connect(db.url, autocommit=True) as conn:
        await conn.execute(BRIDGE_SQL)
        await conn.execute(BRIDGE_SQL)  # applying it twice changes nothing
        await conn.execute("GRANT SELECT ON jetpost_outbox TO mailer")
    yield db
    await db.admin(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db.name)))


@dataclass
class RunningBridge:
    bridge: Bridge
    stop_event: asyncio.Event
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.wait_for(self.task, 20)


@dataclass
class Bridges:
    js: JetStreamContext
    running: list[RunningBridge] = field(default_factory=list)

    async def start(self, settings: Settings) -> RunningBridge:
        kv = await self.js.key_value(CURSOR_BUCKET)
        bridge = Bridge(BridgeConfig.from_settings(settings), self.js, kv)
        stop, started = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(bridge.run(stop, started))
        self.running.append(RunningBridge(bridge, stop, task))
        ready = asyncio.create_task(started.wait())
        await asyncio.wait([task, ready], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if task.done():
            task.result()
        assert started.is_set(), "the bridge did not start within 30s"
        return self.running[-1]


@pytest.fixture
async def bridges(js: JetStreamContext) -> AsyncIterator[Bridges]:
    started = Bridges(js)
    yield started
    for running in started.running:
        if not running.task.done():
            await running.stop()


def bridge_settings(settings: Settings, db: AppDatabase, **extra: Any) -> Settings:
    return settings.model_copy(
        update={
            "bridge_database_url": db.mailer_url,
            "bridge_templates": "signup=welcome",
            "bridge_batch_wait": 0.2,
            # far beyond every wait below: rows must come from notifications and catch-up
            "bridge_poll_interval": 600.0,
            **extra,
        }
    )


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Bounded wait for a condition."""
    async with asyncio.timeout(timeout):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def accepted_counts(js: JetStreamContext) -> Counter[str]:
    return Counter(e.message_id for e in await read_all(js, "mail.evt.*.accepted"))


async def test_rows_become_mail_and_survive_a_database_restart(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink, settings: Settings,
    app_db: AppDatabase, bridges: Bridges,
) -> None:  # fmt: skip
    await bridges.start(bridge_settings(settings, app_db))
    first = await app_db.insert([
        ("activation", "alice@example.com", "alice", "123456", "tok/en+1"),
        ("signup", "bob@example.com", "bob", None, None),
    ])  # fmt: skip
    unknown = await app_db.insert([("no_such_action", "carol@example.com", "carol", None, None)])
    ids = [message_id(app_db.name, i) for i in first]
    for mid in ids:
        await wait_for_event(js, mid, "delivered")
    rejected = await wait_for_event(js, message_id(app_db.name, unknown[0]), "rejected")
    assert "unknown template 'no_such_action'" in getattr(rejected, "reason", "")

    mails = {parse_mail(m.data)["To"]: parse_mail(m.data) for m in sink.received}
    activation = mails["alice@example.com"]
    assert activation["Subject"] == "Activate your account, alice"
    html = activation.get_body(("html",))
    assert html is not None
    assert "123456" in html.get_content()
    assert "activate?token=tok/en%2B1" in html.get_content()
    assert mails["bob@example.com"]["Subject"] == "Welcome to jetpost, bob!"
    accepted = [e for e in await read_all(js, "mail.evt.*.accepted") if e.message_id == ids[0]]
    assert getattr(accepted[0], "tags", None) == ("lifecycle", "activation")
    assert getattr(accepted[0], "idempotency_key", None) == ids[0]

    # The database goes away under the running bridge, and the bridge cannot get back
    # in (its role may not log in) until rows were committed with nobody listening.
    await app_db.admin("ALTER ROLE mailer NOLOGIN")
    await asyncio.to_thread(app_db.server.stop)
    await asyncio.to_thread(app_db.server.start)
    while_away = [
        await app_db.insert([("activation", f"late{n}@example.com", f"late{n}", str(n), "t")])
        for n in range(3)
    ]
    assert await app_db.bridge_connections() == 0
    await app_db.admin("ALTER ROLE mailer LOGIN")
    late = [message_id(app_db.name, ids_[0]) for ids_ in while_away]
    for mid in late:
        await wait_for_event(js, mid, "delivered", timeout=40)
    after = await app_db.insert([("signup", "dave@example.com", "dave", None, None)])
    await wait_for_event(js, message_id(app_db.name, after[0]), "delivered")

    counts = await accepted_counts(js)
    assert {mid: counts[mid] for mid in [*ids, *late]} == dict.fromkeys([*ids, *late], 1)
    assert counts[message_id(app_db.name, after[0])] == 1
    assert sum(counts.values()) == 6
    assert len(sink.received) == 6


async def test_a_late_commit_below_a_read_row_is_not_skipped(
    pipeline: Pipeline, js: JetStreamContext, settings: Settings, app_db: AppDatabase,
    bridges: Bridges,
) -> None:  # fmt: skip
    running = await bridges.start(bridge_settings(settings, app_db, bridge_batch_wait=0.0))
    bridge = running.bridge
    async with await psycopg.AsyncConnection.connect(app_db.url) as slow:
        cur = await slow.execute(
            "INSERT INTO jetpost_outbox (action, email) VALUES ('signup', 'slow@example.com')"
            " RETURNING id"
        )
        fetched = await cur.fetchone()
        assert fetched is not None
        slow_id = int(fetched[0])
        reads = bridge.reads
        (fast_id,) = await app_db.insert([("signup", "fast@example.com", None, None, None)])
        assert fast_id > slow_id
        # the fast row is committed and read, but held back behind the open transaction
        await until(lambda: _more_reads(bridge, reads + 2))
        assert bridge.published == 0
        await slow.commit()
    for row_id in (slow_id, fast_id):
        await wait_for_event(js, message_id(app_db.name, row_id), "delivered")
    counts = await accepted_counts(js)
    assert counts == Counter({message_id(app_db.name, slow_id): 1,
                              message_id(app_db.name, fast_id): 1})  # fmt: skip


async def _more_reads(bridge: Bridge, n: int) -> bool:
    return bridge.reads >= n


async def test_a_restarted_bridge_resumes_from_its_cursor_in_batches(
    pipeline: Pipeline, js: JetStreamContext, settings: Settings, app_db: AppDatabase,
    bridges: Bridges,
) -> None:  # fmt: skip
    config = bridge_settings(settings, app_db, bridge_batch_size=25, bridge_batch_wait=5.0)
    first = await bridges.start(config)
    await app_db.insert([("signup", "one@example.com", "one", None, None)])
    # one row, a 5 s batch window: it goes out when the window closes
    await wait_for_count(js, 1, "mail.evt.*.accepted", timeout=20)
    await first.stop()

    async with await psycopg.AsyncConnection.connect(app_db.url) as conn:
        await conn.execute(
            "INSERT INTO jetpost_outbox (action, email, username)"
            " SELECT 'signup', 'user' || g || '@example.com', 'user' || g"
            " FROM generate_series(1, 60) AS g"
        )
    second = await bridges.start(config)
    # 60 rows waiting: full batches go out at once, only the last 10 wait for the window
    await wait_for_count(js, 61, "mail.evt.*.accepted", timeout=60)
    counts = await accepted_counts(js)
    assert len(counts) == 61 and set(counts.values()) == {1}
    assert second.bridge.published == 60  # the first row was not read again

    kv = await js.key_value(CURSOR_BUCKET)
    entry = await kv.get(cursor_key(app_db.name))
    assert b'"id": 61' in (entry.value or b"")


async def test_jetpost_run_pg_bridge(
    pipeline: Pipeline, js: JetStreamContext, settings: Settings, app_db: AppDatabase,
    spawn: Callable[..., subprocess.Popen[bytes]], tmp_path: Path,
) -> None:  # fmt: skip
    env = {**service_env(settings), "JETPOST_BRIDGE_DATABASE_URL": app_db.mailer_url,
           "JETPOST_BRIDGE_TEMPLATES": "signup=welcome"}  # fmt: skip
    child = spawn(["run", "pg-bridge"], env, tmp_path / "bridge.log")
    (row_id,) = await app_db.insert([("signup", "erin@example.com", "erin", None, None)])
    await wait_for_event(js, message_id(app_db.name, row_id), "delivered", timeout=30)
    child.terminate()
    assert await asyncio.to_thread(child.wait, 20) == 0
    assert "listening on 'jetpost_outbox'" in (tmp_path / "bridge.log").read_text()
