"""`suppressions`: the addresses not to mail, each with the event that put it there."""

from __future__ import annotations

from psycopg import AsyncConnection, sql

from projections.base import Stored, Tables
from shared.events import SuppressionAdded, SuppressionRemoved

Row = tuple[str, str, str, str | None, str, int, object, object]


class SuppressionsProjection:
    name = "suppressions"
    tables: tuple[str, ...] = ("suppressions",)

    async def apply(self, conn: AsyncConnection, batch: list[Stored], tables: Tables) -> None:
        final: dict[tuple[str, str], Row | None] = {}  # last word per (address, scope)
        for item in batch:
            e = item.event
            if isinstance(e, SuppressionAdded):
                final[(e.address, e.scope)] = (
                    e.address, e.scope, e.reason, e.cause_message_id, e.event_id, item.seq,
                    e.occurred_at, e.expires_at,
                )  # fmt: skip
            elif isinstance(e, SuppressionRemoved):
                final[(e.address, e.scope)] = None
        if not final:
            return
        table = tables("suppressions")
        async with conn.cursor() as cur:
            await cur.executemany(
                sql.SQL("DELETE FROM {} WHERE address = %s AND scope = %s").format(table),
                list(final),
            )
            await cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (address, scope, reason, message_id, event_id, seq,"
                    " created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                ).format(table),
                [row for row in final.values() if row is not None],
            )
