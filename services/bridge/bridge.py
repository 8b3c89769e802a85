"""`jetpost run pg-bridge`: turns rows of `jetpost_outbox` in the application's
database into send commands on MAIL_CMD.

One session = one connection: LISTEN on the channel first, then read what is there
(catch-up), then wake on each notification, on a held-back row's recheck, or on the
safety-net poll, and read again. Rows gather into a batch that is published when full
or `batch_wait` after its first row; every command is acked by JetStream before the
cursor (in NATS KV) moves past it. A lost connection ends the session; the next one
starts from the stored cursor, so rows committed while nobody listened are read by
the catch-up, not lost. Re-published rows are the same messages (logic.message_id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from time import monotonic
from typing import Any

import nats
import psycopg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from psycopg import AsyncConnection, errors, sql

from services.bridge.cursor import CURSOR_BUCKET, CursorStore
from services.bridge.logic import (
    START,
    Backoff,
    Batch,
    OutboxRow,
    Position,
    cursor_key,
    encode,
    foreign_cursor,
    settled_prefix,
    to_command,
    wait_timeout,
)
from shared.nats_connect import connect
from shared.nats_setup import apply_definitions, load_definitions
from shared.settings import ConfigError, Settings
from shared.subjects import CMD_SEND, CMD_STREAM

log = logging.getLogger("jetpost.bridge")

# The rows after `position` in (txid, id) order, each with whether it is settled:
# written by a transaction older than every one still running, so nothing can commit
# before it any more. Both sides use the statement's own snapshot.
READ = """
SELECT o.id, o.txid::text, o.action, o.email, o.username, o.code, o.secret,
       o.txid < s.xmin AS settled
FROM jetpost_outbox AS o, (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) AS s
WHERE (o.txid, o.id) > (%s::xid8, %s)
ORDER BY o.txid, o.id
LIMIT %s
"""
NEXT_TXID = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text"

PUBLISH_WINDOW = 256  # commands in flight before waiting for acks
QUERY_TIMEOUT = 30.0  # a read that hangs (a half-open TCP connection) ends the session
RETRYABLE: tuple[type[BaseException], ...] = (
    psycopg.OperationalError, nats.errors.Error, TimeoutError, OSError,
)  # fmt: skip
# A database without sql/pg_bridge.sql applied, too old, or not readable by our role.
MISCONFIGURED = (errors.UndefinedTable, errors.UndefinedColumn, errors.UndefinedFunction,
                 errors.InsufficientPrivilege)  # fmt: skip


@dataclass(frozen=True)
class BridgeConfig:
    database_url: str
    channel: str
    templates: dict[str, str]
    source: str | None
    batch_size: int
    batch_wait: float
    poll_interval: float

    @classmethod
    def from_settings(cls, settings: Settings) -> BridgeConfig:
        if not settings.bridge_database_url:
            raise ConfigError("JETPOST_BRIDGE_DATABASE_URL: required to run pg-bridge")
        return cls(
            database_url=settings.bridge_database_url,
            channel=settings.bridge_channel,
            templates=settings.bridge_template_map,
            source=settings.bridge_source,
            batch_size=settings.bridge_batch_size,
            batch_wait=settings.bridge_batch_wait,
            poll_interval=settings.bridge_poll_interval,
        )


async def publish_all(js: JetStreamContext, commands: list[dict[str, Any]]) -> None:
    """Publish with a window in flight; returns once JetStream acked every one."""
    window = asyncio.Semaphore(PUBLISH_WINDOW)

    async def one(command: dict[str, Any]) -> None:
        async with window:
            await js.publish(
                CMD_SEND, encode(command), stream=CMD_STREAM,
                headers={"Nats-Msg-Id": command["message_id"]},
            )  # fmt: skip

    results = await asyncio.gather(*(one(c) for c in commands), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


class Bridge:
    def __init__(self, config: BridgeConfig, js: JetStreamContext, kv: KeyValue) -> None:
        self.config = config
        self.js = js
        self.kv = kv
        self.reconnect = Backoff(0.5, 10.0)
        self.source: str | None = config.source
        self.reads = 0  # reads of the outbox so far (tests wait on it)
        self.published = 0

    async def run(self, stop: asyncio.Event, started: asyncio.Event | None = None) -> None:
        """Sessions until `stop`; a lost database or NATS is retried with backoff."""
        stopping = asyncio.create_task(stop.wait())
        session: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                session = asyncio.create_task(self._session(started))
                await asyncio.wait({session, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not session.done():
                    return
                error = session.exception()
                if isinstance(error, MISCONFIGURED):
                    raise ConfigError(
                        f"pg-bridge: {error} (apply sql/pg_bridge.sql to the application "
                        "database, PostgreSQL 13 or newer, and grant SELECT on jetpost_outbox)"
                    ) from error
                if error is None or not isinstance(error, RETRYABLE):
                    raise error or RuntimeError("pg-bridge session ended")
                delay = self.reconnect.next_delay()
                if self.reconnect.worth_logging:
                    log.warning("pg-bridge: %s (attempt %d), retrying in %.1fs",
                                str(error).strip() or repr(error), self.reconnect.failures,
                                delay)  # fmt: skip
                await asyncio.wait({stopping}, timeout=delay)
        finally:
            stopping.cancel()
            if session is not None and not session.done():
                session.cancel()
                await asyncio.gather(session, return_exceptions=True)

    async def _session(self, started: asyncio.Event | None) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.config.database_url, autocommit=True, connect_timeout=10,
            application_name="jetpost-pg-bridge",
            keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
        ) as conn:  # fmt: skip
            self.source = self.source or conn.info.dbname
            store = CursorStore(self.kv, cursor_key(self.source), self.source)
            # LISTEN before the catch-up read: a row committed after that read notifies us.
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.config.channel)))
            position = await store.load()
            if foreign_cursor(position, await self._next_txid(conn)):
                log.warning("pg-bridge: the stored cursor is from another cluster (database "
                            "restored elsewhere?): reading every row again; rows already "
                            "sent are the same messages and are not sent twice")  # fmt: skip
                position = START
            if failures := self.reconnect.reset():
                log.info("pg-bridge: reconnected after %d failed attempt(s)", failures)
            log.info("pg-bridge: listening on %r of %r from row %d",
                     self.config.channel, self.source, position.id)  # fmt: skip
            await self._pump(conn, store, position, started)

    async def _pump(self, conn: AsyncConnection, store: CursorStore, position: Position,
                    started: asyncio.Event | None) -> None:  # fmt: skip
        batch = Batch(self.config.batch_size, self.config.batch_wait)
        recheck = Backoff(0.05, 2.0)  # while a running transaction holds rows back
        while True:
            held = False
            if batch.room > 0:
                rows, held = await self._read(conn, position, batch.room)
                if rows:
                    batch.add(rows, monotonic())
                    position = rows[-1].position
                if started is not None:
                    started.set()
            now = monotonic()
            if batch.due(now):
                await self._flush(store, batch.take())
                continue  # read again at once: more rows may be waiting
            delay = recheck.next_delay() if held else None
            if not held:
                recheck.reset()
            timeout = wait_timeout(batch.time_left(now), delay, self.config.poll_interval)
            await self._wait(conn, timeout)

    async def _read(
        self, conn: AsyncConnection, after: Position, limit: int
    ) -> tuple[list[OutboxRow], bool]:
        async with asyncio.timeout(QUERY_TIMEOUT):
            cur = await conn.execute(READ, (str(after.txid), after.id, limit))
            records = await cur.fetchall()
        self.reads += 1
        rows = [
            OutboxRow(id=r[0], txid=int(r[1]), action=r[2], email=r[3], username=r[4],
                      code=r[5], secret=r[6], settled=r[7])
            for r in records
        ]  # fmt: skip
        return settled_prefix(rows)

    async def _next_txid(self, conn: AsyncConnection) -> int:
        async with asyncio.timeout(QUERY_TIMEOUT):
            row = await (await conn.execute(NEXT_TXID)).fetchone()
        assert row is not None
        return int(row[0])

    async def _wait(self, conn: AsyncConnection, timeout: float) -> None:
        """Until a notification arrives (one received while busy counts) or `timeout`."""
        async with contextlib.aclosing(conn.notifies(timeout=timeout, stop_after=1)) as notes:
            async for _ in notes:
                pass

    async def _flush(self, store: CursorStore, rows: list[OutboxRow]) -> None:
        assert self.source is not None
        commands = [to_command(row, self.config.templates, self.source) for row in rows]
        await publish_all(self.js, commands)
        await store.save(rows[-1].position)  # only once every command is acked
        self.published += len(rows)
        log.debug("pg-bridge: published %d row(s), up to id %d", len(rows), rows[-1].id)


async def run_bridge(
    settings: Settings, stop: asyncio.Event, started: asyncio.Event | None = None
) -> None:
    config = BridgeConfig.from_settings(settings)
    nc = await connect(settings, name="jetpost-pg-bridge")
    try:
        js = nc.jetstream()
        await apply_definitions(js, load_definitions(settings))
        kv = await js.key_value(CURSOR_BUCKET)
        await Bridge(config, js, kv).run(stop, started)
    finally:
        await nc.close()
