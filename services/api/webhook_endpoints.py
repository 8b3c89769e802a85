"""The customer's webhook endpoints (admin scope): changes are published as commands
(`mail.cmd.webhook_*`, recorded by intake), reads come from the `webhook_endpoints`
read model and the delivery log. Not to be confused with services/api/webhooks.py,
which receives providers' webhooks."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from litestar import Litestar, Request
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from psycopg import sql
from psycopg.rows import dict_row

from services.api import cursor
from services.api.auth import ADMIN, SECURITY
from services.api.messages import utc
from services.api.problems import Problem
from services.api.routing import delete, get, patch, post
from services.api.runtime import Runtime
from services.api.webhook_bodies import (
    Delivery,
    DeliveryPage,
    Endpoint,
    EndpointCreate,
    EndpointCreated,
    EndpointPage,
    EndpointPatch,
    ReplayAccepted,
    ReplayRequest,
    SecretRotated,
    TestResult,
)
from services.webhooks.catalog import WEBHOOK_TYPES, test_body, unknown_types
from services.webhooks.commands import ROTATION_GRACE
from services.webhooks.post import Poster
from services.webhooks.recorder import Row, write_rows
from services.webhooks.secrets import SecretBox, Signer, new_secret
from services.webhooks.ssrf import Refused, Resolver, check_target, system_resolver
from shared.events import utcnow
from shared.settings import Settings
from shared.subjects import (
    CMD_WEBHOOK_CREATE,
    CMD_WEBHOOK_DELETE,
    CMD_WEBHOOK_REPLAY,
    CMD_WEBHOOK_ROTATE,
    CMD_WEBHOOK_UPDATE,
    MESSAGE_ID_RE,
)

TAGS = ["webhook endpoints"]
BASE = "/v1/webhook-endpoints"
SELECT_ENDPOINTS = sql.SQL(
    "SELECT id, url, events, description, enabled, disabled_reason, created_at, updated_at,"
    " secrets FROM webhook_endpoints"
)


class Outbound:
    """What these routes need beyond `rt`: the key that seals secrets, the resolver
    URLs are checked with (tests swap it), and a guarded client for test webhooks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.box = SecretBox.from_settings(settings)
        self.resolver: Resolver = system_resolver
        self.poster_: Poster | None = None

    async def check(self, url: str) -> None:
        try:
            await check_target(url, self.settings.webhook_allow_private, self.resolve)
        except Refused as exc:
            raise Problem(422, "refused-url", f"url: {exc}") from None

    async def resolve(self, host: str, port: int) -> list[str]:
        return await self.resolver(host, port)

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Litestar) -> AsyncIterator[None]:
        self.poster_ = Poster(self.settings.webhook_allow_private, self.settings.webhook_timeout,
                              self.resolve)  # fmt: skip
        try:
            yield
        finally:
            await self.poster_.close()
            self.poster_ = None


def _outbound(request: Request[Any, Any, Any]) -> Outbound:
    out: Outbound = request.app.state["webhook_endpoints"]
    return out


def _types(events: list[str] | None) -> tuple[str, ...]:
    if events is None:
        return WEBHOOK_TYPES
    if not events:
        raise Problem(400, "invalid-request", "events: at least one webhook type")
    if unknown := unknown_types(events):
        raise Problem(400, "invalid-request", f"events: unknown type(s) {', '.join(unknown)}")
    return tuple(dict.fromkeys(events))


async def _row(rt: Runtime, endpoint_id: str) -> dict[str, Any]:
    if MESSAGE_ID_RE.match(endpoint_id):
        async with rt.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(SELECT_ENDPOINTS + sql.SQL(" WHERE id = %s"), (endpoint_id,))
            row = await cur.fetchone()
        if row is not None:
            return row
    raise Problem(404, "not-found", f"no webhook endpoint {endpoint_id!r}")


def _endpoint(row: dict[str, Any]) -> Endpoint:
    return Endpoint(**{k: v for k, v in row.items() if k != "secrets"})


@post(BASE, summary="Register a webhook endpoint", status_code=201, guards=ADMIN,
      security=SECURITY, tags=TAGS)  # fmt: skip
async def create_endpoint(
    rt: NamedDependency[Runtime], request: Request[Any, Any, Any], data: JSONBody[EndpointCreate]
) -> EndpointCreated:
    out = _outbound(request)
    events = _types(data.events)
    await out.check(data.url)
    endpoint_id, secret = f"whe_{uuid.uuid4().hex}", new_secret()
    command = {"endpoint_id": endpoint_id, "url": data.url, "events": events,
               "description": data.description, "enabled": data.enabled,
               "secret": out.box.seal(secret)}  # fmt: skip
    await rt.bus.publish(CMD_WEBHOOK_CREATE, command, endpoint_id)
    now = utcnow()
    return EndpointCreated(id=endpoint_id, url=data.url, events=list(events),
                           description=data.description, enabled=data.enabled,
                           created_at=now, updated_at=now, secret=secret)  # fmt: skip


@get(BASE, summary="List webhook endpoints", guards=ADMIN, security=SECURITY, tags=TAGS)
async def list_endpoints(
    rt: NamedDependency[Runtime],
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    cursor_: Annotated[str | None, QueryParameter(name="cursor")] = None,
) -> EndpointPage:
    after = cursor.decode(cursor_, (str,))[0] if cursor_ else ""
    query = SELECT_ENDPOINTS + sql.SQL(" WHERE id > %s ORDER BY id LIMIT %s")
    async with rt.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, (after, limit + 1))
        rows = await cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return EndpointPage(items=[_endpoint(r) for r in rows],
                        next_cursor=cursor.encode(rows[-1]["id"]) if more else None)  # fmt: skip


@get(BASE + "/{endpoint_id:str}", summary="One webhook endpoint", guards=ADMIN,
     security=SECURITY, tags=TAGS)  # fmt: skip
async def get_endpoint(rt: NamedDependency[Runtime], endpoint_id: FromPath[str]) -> Endpoint:
    return _endpoint(await _row(rt, endpoint_id))


@patch(BASE + "/{endpoint_id:str}", summary="Change a webhook endpoint", status_code=202,
       guards=ADMIN, security=SECURITY, tags=TAGS)  # fmt: skip
async def update_endpoint(
    rt: NamedDependency[Runtime], request: Request[Any, Any, Any], endpoint_id: FromPath[str],
    data: JSONBody[EndpointPatch],
) -> Endpoint:  # fmt: skip
    current = _endpoint(await _row(rt, endpoint_id))
    changes = data.model_dump(exclude_none=True)
    if data.events is not None:
        changes["events"] = _types(data.events)
    if data.url is not None:
        await _outbound(request).check(data.url)
    await rt.bus.publish(CMD_WEBHOOK_UPDATE, {"endpoint_id": endpoint_id, **changes},
                         uuid.uuid4().hex)  # fmt: skip
    if data.enabled:
        changes["disabled_reason"] = None
    return current.model_copy(update=changes | {"updated_at": utcnow()})


@delete(BASE + "/{endpoint_id:str}", summary="Delete a webhook endpoint", status_code=202,
        guards=ADMIN, security=SECURITY, tags=TAGS)  # fmt: skip
async def delete_endpoint(rt: NamedDependency[Runtime], endpoint_id: FromPath[str]) -> Endpoint:
    current = _endpoint(await _row(rt, endpoint_id))
    await rt.bus.publish(CMD_WEBHOOK_DELETE, {"endpoint_id": endpoint_id}, uuid.uuid4().hex)
    return current


@post(BASE + "/{endpoint_id:str}/rotate-secret", summary="Rotate an endpoint's secret",
      status_code=200, guards=ADMIN, security=SECURITY, tags=TAGS)  # fmt: skip
async def rotate_secret(
    rt: NamedDependency[Runtime], request: Request[Any, Any, Any], endpoint_id: FromPath[str]
) -> SecretRotated:
    await _row(rt, endpoint_id)
    secret = new_secret()
    command = {"endpoint_id": endpoint_id, "secret": _outbound(request).box.seal(secret)}
    await rt.bus.publish(CMD_WEBHOOK_ROTATE, command, uuid.uuid4().hex)
    return SecretRotated(id=endpoint_id, secret=secret,
                         previous_valid_until=utcnow() + ROTATION_GRACE)  # fmt: skip


@post(BASE + "/{endpoint_id:str}/test", summary="Send a test webhook now", status_code=200,
      guards=ADMIN, security=SECURITY, tags=TAGS)  # fmt: skip
async def test_endpoint(
    rt: NamedDependency[Runtime], request: Request[Any, Any, Any], endpoint_id: FromPath[str]
) -> TestResult:
    row, out = await _row(rt, endpoint_id), _outbound(request)
    assert out.poster_ is not None, "the API's lifespan has not started"
    now = utcnow()
    sealed = [
        s["sealed"] for s in row["secrets"]
        if not s["valid_until"] or datetime.fromisoformat(s["valid_until"]) > now
    ]  # fmt: skip
    content, webhook_id = test_body(endpoint_id, now), f"test_{uuid.uuid4().hex}"
    headers = Signer([out.box.open(s) for s in sealed]).headers(webhook_id, now, content)
    attempt = await out.poster_.post(row["url"], content, headers)
    record = Row(endpoint_id=endpoint_id, webhook_id=webhook_id, type="webhook.test",
                 message_id=None, seq=None, attempt=1,
                 outcome="delivered" if attempt.ok else "failed", http_status=attempt.status,
                 error=attempt.error, latency_ms=attempt.latency_ms, response=attempt.response,
                 replay_id=None, attempted_at=now)  # fmt: skip
    async with rt.pool.connection() as conn, conn.transaction():
        await write_rows(conn, [record])
    return TestResult(ok=attempt.ok, http_status=attempt.status, latency_ms=attempt.latency_ms,
                      response=attempt.response, error=attempt.error)  # fmt: skip


@post(BASE + "/{endpoint_id:str}/replay", summary="Send an endpoint's events again",
      status_code=202, guards=ADMIN, security=SECURITY, tags=TAGS)  # fmt: skip
async def replay_endpoint(
    rt: NamedDependency[Runtime], endpoint_id: FromPath[str], data: JSONBody[ReplayRequest]
) -> ReplayAccepted:
    if (data.since is None) == (data.seq is None):
        raise Problem(400, "invalid-request", "give either 'since' (a time) or 'seq'")
    await _row(rt, endpoint_id)
    replay_id, until_seq = uuid.uuid4().hex[:16], await rt.bus.last_seq()
    since = utc(data.since)
    command = {"endpoint_id": endpoint_id, "replay_id": replay_id, "seq": data.seq,
               "since": since.isoformat() if since else None, "until_seq": until_seq}  # fmt: skip
    await rt.bus.publish(CMD_WEBHOOK_REPLAY, command, replay_id)
    return ReplayAccepted(replay_id=replay_id, until_seq=until_seq)


@get(BASE + "/{endpoint_id:str}/deliveries", summary="Delivery attempts, newest first",
     guards=ADMIN, security=SECURITY, tags=TAGS)  # fmt: skip
async def list_deliveries(
    rt: NamedDependency[Runtime],
    endpoint_id: FromPath[str],
    outcome: Annotated[str | None, QueryParameter(description="delivered|retrying|failed")] = None,
    type_: Annotated[str | None, QueryParameter(name="type")] = None,
    message_id: Annotated[str | None, QueryParameter()] = None,
    webhook_id: Annotated[str | None, QueryParameter()] = None,
    since: Annotated[datetime | None, QueryParameter(description="attempted at or after")] = None,
    until: Annotated[datetime | None, QueryParameter(description="attempted before")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    cursor_: Annotated[str | None, QueryParameter(name="cursor")] = None,
) -> DeliveryPage:
    await _row(rt, endpoint_id)
    where = [sql.SQL("endpoint_id = {}").format(sql.Literal(endpoint_id))]
    filters = {"outcome": outcome, "type": type_, "message_id": message_id,
               "webhook_id": webhook_id}  # fmt: skip
    for column, value in filters.items():
        if value is not None:
            where.append(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Literal(value)))
    if since is not None:
        where.append(sql.SQL("attempted_at >= {}").format(sql.Literal(utc(since))))
    if until is not None:
        where.append(sql.SQL("attempted_at < {}").format(sql.Literal(utc(until))))
    if cursor_:
        after = cursor.decode(cursor_, (str,))[0]
        if not after.isdigit():
            raise Problem(400, "invalid-cursor", "cursor is not one this API returned")
        where.append(sql.SQL("id < {}").format(sql.Literal(int(after))))
    query = sql.SQL("SELECT * FROM webhook_deliveries WHERE {} ORDER BY id DESC LIMIT {}").format(
        sql.SQL(" AND ").join(where), sql.Literal(limit + 1)
    )
    async with rt.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query)
        rows = await cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return DeliveryPage(
        items=[Delivery(**{k: v for k, v in r.items() if k != "endpoint_id"}) for r in rows],
        next_cursor=cursor.encode(str(rows[-1]["id"])) if more else None,
    )


ROUTES = [create_endpoint, list_endpoints, get_endpoint, update_endpoint, delete_endpoint,
          rotate_secret, test_endpoint, replay_endpoint, list_deliveries]  # fmt: skip
