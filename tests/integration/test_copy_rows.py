"""projections.base.copy_rows, the messages projection's COPY text: what goes in comes
back out of PostgreSQL unchanged, whatever the strings hold."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from projections.base import copy_rows

HOSTILE = ["tab\there", "line\nbreak\r\n", "back\\slash\\N", 'quote"s', "{brace,comma}",
           "NULL", "", " spaced ", "ünïcødé ✉", "\\."]  # fmt: skip


async def test_copy_rows_round_trips_hostile_values(database_url: str) -> None:
    at = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    rows: list[tuple[Any, ...]] = [
        (i, text, [text, *HOSTILE[:i]], at, None) for i, text in enumerate(HOSTILE)
    ]
    rows.append((99, None, [], None, 7))
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("CREATE TEMP TABLE t (i int, s text, a text[], at timestamptz, n int)")
        async with conn.cursor() as cur, cur.copy("COPY t FROM STDIN") as out:
            await out.write(copy_rows(rows))
        got = await (await conn.execute("SELECT * FROM t ORDER BY i")).fetchall()
    assert got == rows
