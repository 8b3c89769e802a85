"""Counts over a window: messages by current status (by when they were created)
and the per-day outcome counts of daily_stats."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from litestar.di import NamedDependency
from litestar.params import QueryParameter
from psycopg import sql

from services.api.auth import READ, SECURITY
from services.api.messages import WHEN, utc, when
from services.api.routing import get
from services.api.runtime import Runtime
from services.api.schemas import DailyCount, Stats


def _where(bounds: list[tuple[str, str, Any]]) -> sql.Composable:
    parts = [sql.SQL("{} {} {}").format(sql.Identifier(col), sql.SQL(op), sql.Literal(value))
             for col, op, value in bounds if value is not None]  # fmt: skip
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts) if parts else sql.SQL("")


def _day(at: datetime | None, *, end: bool) -> date | None:
    """The UTC day of a bound; an exclusive end at midnight ends the day before."""
    if at is None:
        return None
    at = (utc(at) or at).astimezone(UTC)
    return (at - timedelta(microseconds=1)).date() if end else at.date()


@get("/v1/stats", guards=READ, security=SECURITY, tags=["stats"],
     summary="Counts by status, and per day")  # fmt: skip
async def stats(
    rt: NamedDependency[Runtime],
    since: Annotated[str | None, QueryParameter(description=f"from (inclusive): {WHEN}")] = None,
    until: Annotated[str | None, QueryParameter(description=f"to (exclusive): {WHEN}")] = None,
) -> Stats:
    return await compute_stats(rt, when(since, "since"), when(until, "until"))


async def compute_stats(rt: Runtime, since: datetime | None, until: datetime | None) -> Stats:
    since, until = utc(since), utc(until)
    by_created = _where([("created_at", ">=", since), ("created_at", "<", until)])
    by_day = _where([("day", ">=", _day(since, end=False)), ("day", "<=", _day(until, end=True))])
    async with rt.pool.connection() as conn:
        cur = await conn.execute(
            sql.SQL("SELECT status, count(*) FROM messages{} GROUP BY status ORDER BY status")
            .format(by_created)
        )  # fmt: skip
        by_status = {status: int(n) for status, n in await cur.fetchall()}
        cur = await conn.execute(
            sql.SQL("SELECT day, template, outcome, count FROM daily_stats{}"
                    " ORDER BY day, template, outcome").format(by_day)
        )  # fmt: skip
        daily = [DailyCount(day=d, template=t, outcome=o, count=int(n))
                 for d, t, o, n in await cur.fetchall()]  # fmt: skip
    return Stats(since=since, until=until, total=sum(by_status.values()),
                 by_status=by_status, daily=daily)  # fmt: skip


ROUTES = [stats]
