"""Property: the messages projection, fed random histories in random batches on a real
PostgreSQL, holds exactly the rows the fold gives for each message."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.base import Stored, Tables
from projections.messages import COLUMNS, MessagesProjection, to_row
from shared.events import Event
from shared.fold import fold
from tests.strategies import histories


async def project(
    database_url: str, events: list[Event], cuts: list[int]
) -> dict[str, tuple[Any, ...]]:
    stored = [Stored(i + 1, json.dumps({}).encode(), e) for i, e in enumerate(events)]
    bounds = sorted({0, len(stored), *(c % (len(stored) + 1) for c in cuts)})
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("TRUNCATE messages, daily_stats")
        for lo, hi in itertools.pairwise(bounds):
            async with conn.transaction():
                await MessagesProjection().apply(conn, stored[lo:hi], Tables())
        cur = await conn.execute(
            "SELECT {} FROM messages".format(", ".join(COLUMNS))  # noqa: S608 - constant names
        )
        return {row[0]: tuple(row) for row in await cur.fetchall()}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(histories(), st.lists(st.integers(0, 40), max_size=4))
def test_projection_agrees_with_the_fold(database_url: str, events: list[Event],
                                         cuts: list[int]) -> None:  # fmt: skip
    rows = asyncio.run(project(database_url, events, cuts))
    ids = {e.message_id for e in events}
    assert set(rows) == ids
    for mid in ids:
        mine = [e for e in events if e.message_id == mid]
        last_seq = max(i + 1 for i, e in enumerate(events) if e.message_id == mid)
        assert rows[mid] == to_row(fold(mine), last_seq)
