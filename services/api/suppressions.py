"""The suppression list: read from its read model; changed by publishing
`mail.cmd.suppress` / `mail.cmd.unsuppress` (intake records the change)."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import ValidationError

from services.api import cursor
from services.api.auth import ADMIN, READ, SECURITY, SEND
from services.api.problems import Problem
from services.api.runtime import Runtime
from services.api.schemas import Suppression, SuppressionAccepted, SuppressionPage
from shared.commands import SuppressCommand
from shared.subjects import CMD_SUPPRESS, CMD_UNSUPPRESS

TAGS = ["suppressions"]


@get(
    "/v1/suppressions",
    summary="List suppressed addresses",
    guards=READ,
    security=SECURITY,
    tags=TAGS,
)
async def list_suppressions(
    rt: NamedDependency[Runtime],
    address: FromQuery[str | None] = None,
    scope_: Annotated[str | None, QueryParameter(name="scope")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    cursor_: Annotated[str | None, QueryParameter(name="cursor")] = None,
) -> SuppressionPage:
    return await find_suppressions(rt, address, scope_, limit, cursor_)


async def find_suppressions(
    rt: Runtime, address: str | None, scope_: str | None, limit: int, cursor_: str | None
) -> SuppressionPage:
    """One page of suppressions by address (the API's list and the console's)."""
    where: list[sql.Composable] = []
    if address is not None:
        where.append(sql.SQL("address = {}").format(sql.Literal(address.strip().lower())))
    if scope_ is not None:
        where.append(sql.SQL("scope = {}").format(sql.Literal(scope_)))
    if cursor_:
        after = cursor.decode(cursor_, (str, str))
        where.append(sql.SQL("(address, scope) > ({}, {})").format(*map(sql.Literal, after)))
    condition = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    query = sql.SQL(
        "SELECT address, scope, reason, message_id, event_id, created_at, expires_at"
        " FROM suppressions{} ORDER BY address, scope LIMIT {}"
    ).format(condition, sql.Literal(limit + 1))
    async with rt.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query)
        rows = await cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = cursor.encode(rows[-1]["address"], rows[-1]["scope"]) if more else None
    return SuppressionPage(items=[Suppression(**r) for r in rows], next_cursor=next_cursor)


@post(
    "/v1/suppressions",
    summary="Suppress an address",
    status_code=202,
    guards=SEND,
    security=SECURITY,
    tags=TAGS,
)
async def add_suppression(
    rt: NamedDependency[Runtime], data: JSONBody[SuppressCommand]
) -> SuppressionAccepted:
    return await suppress(rt, data)


async def suppress(rt: Runtime, command: SuppressCommand) -> SuppressionAccepted:
    await rt.bus.publish(CMD_SUPPRESS, command.model_dump(mode="json"), uuid.uuid4().hex)
    return SuppressionAccepted(address=command.address, scope=command.scope)


@delete(
    "/v1/suppressions/{address:str}",
    summary="Lift a suppression (admin)",
    status_code=202,
    guards=ADMIN,
    security=SECURITY,
    tags=TAGS,
)
async def remove_suppression(
    rt: NamedDependency[Runtime],
    address: FromPath[str],
    scope_: Annotated[str, QueryParameter(name="scope")] = "",
) -> SuppressionAccepted:
    return await lift(rt, address, scope_)


async def lift(rt: Runtime, address: str, scope_: str) -> SuppressionAccepted:
    try:
        command = SuppressCommand(address=address, scope=scope_)
    except ValidationError as exc:
        raise Problem(400, "invalid-request", f"address: {exc.errors()[0]['msg']}") from None
    await rt.bus.publish(CMD_UNSUPPRESS, command.model_dump(mode="json"), uuid.uuid4().hex)
    return SuppressionAccepted(address=command.address, scope=command.scope)


ROUTES = [list_suppressions, add_suppression, remove_suppression]
