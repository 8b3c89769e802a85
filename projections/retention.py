"""Retention of the read models and captured mail: JETPOST_RETENTION_DAYS.

A message whose whole life (its creation and its last event) is older than the
retention goes, with its timeline; timeline rows of other aggregates (suppression
changes, unmatched feedback) go by their own time. Deletes run in small batches, each
its own short transaction, and skip rows a projection batch has locked (SKIP LOCKED),
so the projections never wait on the worker. The first pass runs at start-up, then
one every JETPOST_RETENTION_INTERVAL. Captured dev mail (`<data dir>/capture`) older
than the retention is deleted on the same passes.

The log keeps what JETPOST_EVT_MAX_AGE says (forever by default): Postgres is a cache
of it, so a replay rebuilds only what the log still holds. Keep the log as long as the
read models or longer (a replay then brings old rows back until the next pass), or
both the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import AsyncConnection

from shared.settings import ConfigError, Settings
from shared.telemetry.metrics import RETENTION_DELETED

log = logging.getLogger("jetpost.retention")

_OLD_MESSAGES = """
WITH doomed AS (
    SELECT id FROM messages
    WHERE created_at < %(cutoff)s AND coalesce(last_event_at, updated_at) < %(cutoff)s
    ORDER BY created_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED
), events AS (
    DELETE FROM message_events WHERE message_id IN (SELECT id FROM doomed) RETURNING 1
), gone AS (
    DELETE FROM messages WHERE id IN (SELECT id FROM doomed) RETURNING 1
)
SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM events)
"""
# Timeline rows of aggregates without a messages row (sup-..., fb-..., rows whose
# message went before): by their own time.
_OLD_EVENTS = """
WITH gone AS (
    DELETE FROM message_events WHERE seq IN (
        SELECT e.seq FROM message_events e
        WHERE e.occurred_at < %(cutoff)s
          AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = e.message_id)
        LIMIT %(batch)s FOR UPDATE SKIP LOCKED
    ) RETURNING 1
)
SELECT 0, count(*) FROM gone
"""


@dataclass
class Swept:
    messages: int = 0
    events: int = 0
    files: int = 0


async def _batches(conn: AsyncConnection, query: str, cutoff: datetime, batch: int,
                   stop: asyncio.Event | None, swept: Swept) -> None:  # fmt: skip
    """Runs `query` (which answers: messages deleted, timeline rows deleted) one short
    transaction at a time until a batch comes back short."""
    while stop is None or not stop.is_set():
        async with conn.transaction():
            cur = await conn.execute(query, {"cutoff": cutoff, "batch": batch})
            row = await cur.fetchone()
        messages, events = (int(row[0]), int(row[1])) if row else (0, 0)
        swept.messages += messages
        swept.events += events
        if (messages if query is _OLD_MESSAGES else events) < batch:
            break
        await asyncio.sleep(0)  # let the projections' own work through between batches


async def sweep_database(database_url: str, cutoff: datetime, batch: int,
                         stop: asyncio.Event | None = None) -> Swept:  # fmt: skip
    swept = Swept()
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        # a projection batch never waits on us for long: give up a lock after 1 s
        await conn.execute("SET lock_timeout = '1s'")
        await conn.commit()
        await _batches(conn, _OLD_MESSAGES, cutoff, batch, stop, swept)
        await _batches(conn, _OLD_EVENTS, cutoff, batch, stop, swept)
    RETENTION_DELETED.labels("messages").inc(swept.messages)
    RETENTION_DELETED.labels("message_events").inc(swept.events)
    return swept


def sweep_files(folder: Path, cutoff: datetime) -> int:
    """Captured mail (`.eml`) last written before the cutoff."""
    if not folder.is_dir():
        return 0
    limit, removed = cutoff.timestamp(), 0
    for path in folder.glob("*.eml"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < limit:
                path.unlink()
                removed += 1
    RETENTION_DELETED.labels("captured_files").inc(removed)
    return removed


async def sweep(settings: Settings, now: datetime | None = None,
                stop: asyncio.Event | None = None) -> Swept:  # fmt: skip
    """One pass: everything older than the retention."""
    if not settings.database_url or not settings.retention_days:
        raise ConfigError("JETPOST_RETENTION_DAYS and JETPOST_DATABASE_URL: required")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.retention_days)
    swept = await sweep_database(settings.database_url, cutoff, settings.retention_batch, stop)
    swept.files = await asyncio.to_thread(sweep_files, settings.data_dir / "capture", cutoff)
    return swept


async def run_retention(settings: Settings, stop: asyncio.Event,
                        started: asyncio.Event | None = None) -> None:  # fmt: skip
    """`jetpost run retention` (and `jetpost dev`): a pass at start-up, then every
    JETPOST_RETENTION_INTERVAL; without JETPOST_RETENTION_DAYS it keeps everything."""
    if settings.retention_days and not settings.database_url:
        raise ConfigError("JETPOST_DATABASE_URL: required for retention")
    if started is not None:
        started.set()
    while settings.retention_days and not stop.is_set():
        try:
            swept = await sweep(settings, stop=stop)
            if swept.messages or swept.events or swept.files:
                log.info("retention: removed %d messages, %d timeline rows, %d captured files",
                         swept.messages, swept.events, swept.files)  # fmt: skip
        except (psycopg.OperationalError, psycopg.errors.LockNotAvailable) as exc:
            log.warning("retention pass stopped, next one in %ss: %r",
                        settings.retention_interval, exc)  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.retention_interval)
    await stop.wait()
