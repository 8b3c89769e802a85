"""Reading messages: the list (filters, keyset pages), one message (from the read
model, or folded from the log `as_of` a time) and its timeline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from litestar import Response
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter
from psycopg import sql
from psycopg.rows import dict_row

from services.api import cursor
from services.api.auth import READ, SECURITY
from services.api.coalesce import Coalescer
from services.api.encoded import EncodedJSON
from services.api.problems import Problem
from services.api.routing import get
from services.api.runtime import Runtime
from services.api.schemas import (
    MESSAGE_COLUMNS,
    Message,
    MessagePage,
    Timeline,
    TimelineEvent,
    message_json_values,
)
from shared.fold import STATUS_RANK, fold
from shared.mailbox import parse_mailbox
from shared.subjects import MESSAGE_ID_RE

TAGS = ["messages"]


def utc(value: datetime | None) -> datetime | None:
    """Query timestamps without a zone are UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def when(raw: str | None, name: str) -> datetime | None:
    """A query bound: an ISO date-time or a date alone (its midnight), UTC unless zoned."""
    if raw is None or not raw.strip():
        return None
    try:
        return utc(datetime.fromisoformat(raw.strip()))
    except ValueError:
        detail = f"{name}: {raw!r} is not an ISO date (2026-01-31) or date-time"
        raise Problem(400, "invalid-request", detail) from None


WHEN = "an ISO date or date-time (UTC unless it has an offset)"


def _recipient(to: str) -> sql.Composable:
    if to.startswith("@"):
        domain = to[1:].strip().lower()
        if not domain or any(c.isspace() or c == "@" for c in domain):
            raise Problem(400, "invalid-request", f"to: {to!r} is not '@domain'")
        return sql.SQL("rcpt_domains @> ARRAY[{}]::text[]").format(sql.Literal(domain))
    try:
        address = parse_mailbox(to).email
    except ValueError as exc:
        raise Problem(400, "invalid-request", f"to: {exc}") from None
    return sql.SQL("to_addrs @> ARRAY[{}]::text[]").format(sql.Literal(address))


def list_query(filters: dict[str, Any], after: tuple[Any, ...] | None, limit: int) -> sql.Composed:
    """The page's SQL: values go in as literals composed by psycopg, never by f-strings."""
    where: list[sql.Composable] = []
    simple = {"status": "status = {}", "template": "template = {}",
              "tag": "tags @> ARRAY[{}]::text[]", "since": "created_at >= {}",
              "until": "created_at < {}"}  # fmt: skip
    for name, clause in simple.items():
        if filters.get(name) is not None:
            where.append(sql.SQL(clause).format(sql.Literal(filters[name])))
    if filters.get("to"):
        where.append(_recipient(filters["to"]))
    if after is not None:
        where.append(sql.SQL("(created_at, id) < ({}, {})").format(*map(sql.Literal, after)))
    condition = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    return sql.SQL("SELECT * FROM messages{} ORDER BY created_at DESC, id DESC LIMIT {}").format(
        condition, sql.Literal(limit + 1)
    )


@get(
    "/v1/messages", summary="List messages, newest first", guards=READ, security=SECURITY, tags=TAGS
)
async def list_messages(
    rt: NamedDependency[Runtime],
    status: FromQuery[str | None] = None,
    to: Annotated[str | None, QueryParameter(description="an address, or '@domain'")] = None,
    template: FromQuery[str | None] = None,
    tag: FromQuery[str | None] = None,
    since: Annotated[str | None, QueryParameter(description=f"created at or after: {WHEN}")] = None,
    until: Annotated[str | None, QueryParameter(description=f"created before: {WHEN}")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    cursor_: Annotated[str | None, QueryParameter(name="cursor")] = None,
) -> MessagePage:
    if status is not None and status not in STATUS_RANK:
        known = ", ".join(sorted(set(STATUS_RANK) - {"unknown"}))
        raise Problem(400, "invalid-request", f"status: {status!r} is not one of {known}")
    filters = {"status": status, "to": to, "template": template, "tag": tag,
               "since": when(since, "since"), "until": when(until, "until")}  # fmt: skip
    return await find_messages(rt, filters, cursor_, limit)


async def find_messages(
    rt: Runtime, filters: dict[str, Any], cursor_: str | None, limit: int
) -> MessagePage:
    """One page of the list, newest first (the API's list and the console's)."""
    after = cursor.decode(cursor_, (datetime, str)) if cursor_ else None
    async with rt.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(list_query(filters, after, limit))
        rows = await cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    return MessagePage(
        items=[Message.from_row(r) for r in rows],
        next_cursor=cursor.encode(last["created_at"], last["id"]) if more and last else None,
    )


def known_id(message_id: str) -> str:
    # Also keeps a crafted id ('a.>') from widening the log's subject filter.
    if not MESSAGE_ID_RE.match(message_id):
        raise Problem(404, "not-found", f"no message {message_id!r}")
    return message_id


async def message_row(rt: Runtime, message_id: str) -> dict[str, Any] | None:
    if not MESSAGE_ID_RE.match(message_id):
        return None  # no such row, and a value that could fail a shared batch stays out
    if rt.message_rows_ is None:
        rt.message_rows_ = Coalescer(partial(_message_rows, rt))
    return await rt.message_rows_.get(message_id)


async def message_body(rt: Runtime, message_id: str) -> bytes | None:
    """The message's JSON as `get_message` answers it (schemas.message_json), or None.
    Its own coalesced query: the columns in Message's order as tuples, encoded as the
    batch arrives (no dict per row). Two batches in flight, the Coalescer's default:
    against one at a time (bench.api, same runs, loaded 2-core machine) the CPU per
    GET differed by less than the runs' noise, with one worker and with two; two
    workers cost more per GET than one with either setting."""
    if not MESSAGE_ID_RE.match(message_id):
        return None  # as in message_row
    if rt.message_bodies_ is None:
        rt.message_bodies_ = Coalescer(partial(_message_bodies, rt))
    return await rt.message_bodies_.get(message_id)


async def _message_bodies(rt: Runtime, ids: Sequence[str]) -> dict[str, bytes]:
    async with rt.pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(BODY_QUERY, (",".join(ids),))
        return {values[0]: message_json_values(values) for values in await cur.fetchall()}


# composed once (a query of constant text is prepared by psycopg after a few runs)
BODY_QUERY = (
    # id is the first column; the ids go as one text (known_id: no commas), which
    # psycopg dumps for less than a list as text[]
    sql.SQL("SELECT {} FROM messages WHERE id = ANY(string_to_array(%s, ','))")
    .format(sql.SQL(", ").join(sql.Identifier(c) if c else sql.NULL for c in MESSAGE_COLUMNS))
    .as_string()
)


async def _message_rows(rt: Runtime, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    async with rt.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM messages WHERE id = ANY(%s)", (list(ids),))
        return {row["id"]: row for row in await cur.fetchall()}


@get(
    "/v1/messages/{message_id:str}",
    summary="One message, now or as of a time",
    guards=READ,
    security=SECURITY,
    tags=TAGS,
)
async def get_message(
    rt: NamedDependency[Runtime],
    message_id: FromPath[str],
    as_of: Annotated[
        datetime | None,
        QueryParameter(description="fold the message's events from the log up to this time"),
    ] = None,
) -> Response[Message]:
    known_id(message_id)
    if as_of is not None:
        return Response(await _as_of(rt, message_id, utc(as_of) or as_of))
    body = await message_body(rt, message_id)
    if body is None:
        raise Problem(404, "not-found", f"no message {message_id!r}")
    # the hot read: the row encoded straight to Message's JSON (schemas.message_json)
    return EncodedJSON(body)  # type: ignore[return-value]


async def _as_of(rt: Runtime, message_id: str, as_of: datetime) -> Message:
    events = await rt.bus.history(message_id)
    if not events:
        raise Problem(404, "not-found", f"no message {message_id!r} in the log")
    until = [e for e in events if e.occurred_at <= as_of]
    if not until:
        detail = f"message {message_id!r} has no events at or before {as_of.isoformat()}"
        raise Problem(404, "not-found", detail)
    return Message.from_state(fold(until), as_of)


@get(
    "/v1/messages/{message_id:str}/events",
    summary="A message's timeline",
    guards=READ,
    security=SECURITY,
    tags=TAGS,
)
async def message_events(rt: NamedDependency[Runtime], message_id: FromPath[str]) -> Timeline:
    return await timeline(rt, known_id(message_id))


async def timeline(rt: Runtime, message_id: str) -> Timeline:
    async with rt.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT seq, type, occurred_at, data FROM message_events"
            " WHERE message_id = %s ORDER BY seq",
            (message_id,),
        )
        rows = await cur.fetchall()
    if not rows and await message_row(rt, message_id) is None:
        raise Problem(404, "not-found", f"no message {message_id!r}")
    return Timeline(message_id=message_id, items=[TimelineEvent(**r) for r in rows])


ROUTES = [list_messages, get_message, message_events]
