"""`message_events`: every event of every message, keyed by stream sequence.

Rows go to Postgres as one COPY block written here rather than row by row: the
event's JSON is stored as it was appended, and only needs its backslashes doubled
(JSON has no raw tabs or newlines) to be valid COPY text.
"""

from __future__ import annotations

from psycopg import AsyncConnection, sql

from projections.base import Stored, Tables


def copy_text(batch: list[Stored]) -> bytes:
    parts: list[bytes] = []
    add = parts.append
    for item in batch:
        e = item.event
        data = item.raw
        if b"\\" in data or b"\n" in data or b"\r" in data:  # else nothing to escape
            # jsonb refuses the \u0000 escape: the same stand-in as projections.base.pg_text
            data = data.replace(b"\\u0000", b"\\ufffd").replace(b"\\", b"\\\\")
            data = data.replace(b"\n", b"\\n").replace(b"\r", b"\\r")
        at = item.at or e.occurred_at.isoformat()  # as the log spells it, if known
        add(f"{item.seq}\t{e.message_id}\t{e.type}\t{at}\t".encode())
        add(data)  # joined once below: not copied into a line first
        add(b"\n")
    return b"".join(parts)


class TimelineProjection:
    name = "timeline"
    tables: tuple[str, ...] = ("message_events",)
    per_message = True
    appends_only = True
    reads: frozenset[str] | None = None

    async def apply(self, conn: AsyncConnection, batch: list[Stored], tables: Tables) -> None:
        copy = sql.SQL("COPY {} (seq, message_id, type, occurred_at, data) FROM STDIN").format(
            tables("message_events")
        )
        async with conn.cursor() as cur, cur.copy(copy) as out:
            await out.write(copy_text(batch))
