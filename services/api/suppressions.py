"""The suppression list: read from its read model; changed by publishing
`mail.cmd.suppress` / `mail.cmd.unsuppress` (intake records the change)."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import ValidationError

from services.api import cursor
from services.api.auth import ADMIN, READ, SECURITY, SEND
from services.api.problems import Problem
from services.api.routing import delete, get, post
from services.api.runtime import Runtime
from services.api.schemas import Suppression, SuppressionAccepted, SuppressionPage
from shared.commands import SuppressCommand, suppression_scope
from shared.consumers import TRANSIENT_ERRORS
from shared.events import utcnow
from shared.subjects import CMD_SUPPRESS, CMD_UNSUPPRESS, SUPPRESSION_BUCKET
from shared.suppression_set import get_entry

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
        try:
            scope = suppression_scope(scope_)
        except ValueError as exc:
            raise Problem(400, "invalid-request", str(exc)) from None
        where.append(sql.SQL("scope = {}").format(sql.Literal(scope)))
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


async def _exists(rt: Runtime, address: str, scope: str) -> bool:
    """On the list: in the read model, or already in the KV set intake checks (the
    read model may lag a suppression just made). A KV that cannot be read leaves the
    read model's word."""
    async with rt.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT 1 FROM suppressions WHERE address = %s AND scope = %s", (address, scope)
        )
        if await cur.fetchone() is not None:
            return True
    try:
        entry = await get_entry(await rt.bus.js.key_value(SUPPRESSION_BUCKET), address, scope)
    except TRANSIENT_ERRORS:
        return False
    return entry is not None and entry.active(utcnow())


@delete(
    "/v1/suppressions/{address:str}",
    summary="Lift a suppression (admin)",
    description="404 when the address (in that scope) is not suppressed.",
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
        first = exc.errors()[0]
        raise Problem(400, "invalid-request", f"{first['loc'][0]}: {first['msg']}") from None
    if not await _exists(rt, command.address, command.scope):
        where = f" in scope {command.scope!r}" if command.scope else ""
        raise Problem(404, "not-found", f"{command.address} is not suppressed{where}")
    await rt.bus.publish(CMD_UNSUPPRESS, command.model_dump(mode="json"), uuid.uuid4().hex)
    return SuppressionAccepted(address=command.address, scope=command.scope)


ROUTES = [list_suppressions, add_suppression, remove_suppression]
