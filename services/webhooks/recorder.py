"""Writes delivery attempts to Postgres in batches: each caller waits until its row is
committed (only then is the event acked), and learns since when its endpoint has
been failing without a success. One COPY and one upsert per batch keep the log of
attempts off the delivery rate's critical path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import astuple, dataclass
from datetime import datetime

import psycopg

log = logging.getLogger("jetpost.webhooks")

COLUMNS = (
    "endpoint_id", "webhook_id", "type", "message_id", "seq", "attempt", "outcome",
    "http_status", "error", "latency_ms", "response", "replay_id", "attempted_at",
    "next_attempt_at",
)  # fmt: skip
COPY = f"COPY webhook_deliveries ({', '.join(COLUMNS)}) FROM STDIN"
HEALTH = """
INSERT INTO webhook_endpoint_health AS h (endpoint_id, last_success_at, failing_since)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[])
ON CONFLICT (endpoint_id) DO UPDATE SET
  last_success_at = COALESCE(EXCLUDED.last_success_at, h.last_success_at),
  failing_since = CASE WHEN EXCLUDED.last_success_at IS NOT NULL THEN EXCLUDED.failing_since
                       ELSE COALESCE(h.failing_since, EXCLUDED.failing_since) END
RETURNING endpoint_id, failing_since
"""


@dataclass(frozen=True)
class Row:
    endpoint_id: str
    webhook_id: str
    type: str
    message_id: str | None
    seq: int | None
    attempt: int
    outcome: str  # delivered | retrying | failed
    http_status: int | None
    error: str | None
    latency_ms: float
    response: str
    replay_id: str | None
    attempted_at: datetime
    next_attempt_at: datetime | None = None


def health(rows: list[Row]) -> dict[str, tuple[datetime | None, datetime | None]]:
    """Per endpoint: (last success in these rows, failing since after it). Pure."""
    out: dict[str, tuple[datetime | None, datetime | None]] = {}
    for row in rows:
        success, failing = out.get(row.endpoint_id, (None, None))
        if row.outcome == "delivered":
            out[row.endpoint_id] = (row.attempted_at, None)
        else:
            out[row.endpoint_id] = (success, failing or row.attempted_at)
    return out


async def write_rows(
    conn: psycopg.AsyncConnection[tuple[object, ...]], rows: list[Row]
) -> dict[str, datetime | None]:
    """The attempts and the endpoints' health; the caller owns the transaction."""
    states = health(rows)
    async with conn.cursor() as cur:
        async with cur.copy(COPY) as copy:
            for row in rows:
                await copy.write_row(astuple(row))
        await cur.execute(HEALTH, (list(states), [s for s, _ in states.values()],
                                   [f for _, f in states.values()]))  # fmt: skip
        return {str(eid): since for eid, since in await cur.fetchall()}  # type: ignore[misc]


class Recorder:
    def __init__(self, database_url: str, max_batch: int = 1000) -> None:
        self.database_url = database_url
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Row, asyncio.Future[datetime | None]]] = asyncio.Queue()
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def record(self, row: Row) -> datetime | None:
        """Once committed: since when the endpoint fails without a success (None: fine)."""
        future: asyncio.Future[datetime | None] = asyncio.get_running_loop().create_future()
        await self._queue.put((row, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                failing = await self._write([row for row, _ in batch])
            except (psycopg.Error, OSError) as exc:
                log.warning("delivery attempts not recorded, will retry: %r", exc)
                await self._drop_connection()
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for row, future in batch:
                if not future.done():
                    future.set_result(failing.get(row.endpoint_id))

    async def _write(self, rows: list[Row]) -> dict[str, datetime | None]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self.database_url, connect_timeout=5)
        async with self._conn.transaction():
            return await write_rows(self._conn, rows)

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await self._conn.close()
        self._conn = None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop_connection()
