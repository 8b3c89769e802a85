"""`message_events`: every event of every message, keyed by stream sequence."""

from __future__ import annotations

from psycopg import AsyncConnection, sql

from projections.base import Stored, Tables


class TimelineProjection:
    name = "timeline"
    tables: tuple[str, ...] = ("message_events",)

    async def apply(self, conn: AsyncConnection, batch: list[Stored], tables: Tables) -> None:
        copy = sql.SQL("COPY {} (seq, message_id, type, occurred_at, data) FROM STDIN").format(
            tables("message_events")
        )
        async with conn.cursor() as cur, cur.copy(copy) as out:
            for item in batch:
                e = item.event
                await out.write_row((item.seq, e.message_id, e.type, e.occurred_at,
                                     item.raw.decode()))  # fmt: skip
