"""The timeline writes an event's time as the log spells it (projections.decode.
read_event_at), not as `isoformat()` would: PostgreSQL must read every spelling the
mirror accepts as the same time, for the times pydantic writes and the odd ones a
hand-appended event may hold (fewer fraction digits, other offsets, none)."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta, timezone

import psycopg
from pydantic import TypeAdapter

from projections.base import Stored
from projections.decode import ISO, read_event_at
from projections.timeline import copy_text
from shared.events import Delivered

ODD = [
    "2026-12-02T14:48:08Z", "2026-12-02T14:48:08.5Z", "2026-12-02T14:48:08.123+05:30",
    "2026-12-02T23:59:59.999999-08:00", "2026-12-02T14:48:08", "2026-12-02T14:48:08.000001",
    "2024-02-29T00:00:00+00:00", "1999-12-31T23:59:59.9+14:00", "2026-03-29T02:30:00-12:00",
]  # fmt: skip


def spellings() -> list[str]:
    """pydantic's spellings of generated times (several offsets), and the odd ones."""
    rng = random.Random(20261202)
    dump = TypeAdapter(datetime).dump_json
    out = list(ODD)
    for _ in range(300):
        zone = timezone(timedelta(minutes=rng.choice([0, 0, 60, 330, -480, 840, -720])))
        at = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.uniform(0, 1e9))
        out.append(dump(at.astimezone(zone)).decode().strip('"'))
    return out


async def test_postgres_reads_the_logs_spelling_as_the_time_isoformat_gives(
    database_url: str,
) -> None:
    texts = spellings()
    assert all(ISO.fullmatch(t) for t in texts)  # each one the mirror takes
    formatted = [datetime.fromisoformat(t).isoformat() for t in texts]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT a, b FROM unnest(%s::text[], %s::text[]) AS t(a, b)"
            " WHERE a::timestamptz IS DISTINCT FROM b::timestamptz",
            (texts, formatted),
        )
        assert await cur.fetchall() == []


def test_the_timeline_writes_the_time_as_read() -> None:
    raw = Delivered(event_id="e", message_id="m1", attempt=1, provider="smtp", smtp_code=250,
                    response="250 OK").model_dump_json().encode()  # fmt: skip
    spelled = "2026-12-02T14:48:08.5+05:30"
    raw = re.sub(rb'"occurred_at":"[^"]*"', b'"occurred_at":"%s"' % spelled.encode(), raw)
    event, at = read_event_at(raw, b"delivered")
    assert at == spelled and event.occurred_at == datetime.fromisoformat(spelled)
    line = copy_text([Stored(7, raw, event, None, at)])
    assert line.split(b"\t")[3] == spelled.encode()
    # without the text (a full parse), isoformat's spelling
    line = copy_text([Stored(7, raw, event)])
    assert line.split(b"\t")[3] == event.occurred_at.isoformat().encode()
