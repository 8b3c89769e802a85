"""`webhook_endpoints`: the customer's webhook endpoints, folded from their events
with the same fold the delivery service uses (services/webhooks/endpoints.py).
Secrets stay sealed here; the API never shows them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from projections.base import Stored, Tables, execute_many
from services.webhooks.endpoints import ENDPOINT_EVENTS, Endpoint, Secret, fold_all

COLUMNS = (
    "id", "url", "events", "description", "enabled", "disabled_reason", "secrets",
    "created_at", "updated_at", "start_seq", "command_seq",
)  # fmt: skip


def to_row(e: Endpoint) -> tuple[Any, ...]:
    secrets = [{"sealed": s.sealed,
                "valid_until": s.valid_until.isoformat() if s.valid_until else None}
               for s in e.secrets]  # fmt: skip
    return (e.id, e.url, list(e.events), e.description, e.enabled, e.disabled_reason,
            json.dumps(secrets), e.created_at, e.updated_at, e.start_seq,
            e.command_seq)  # fmt: skip


def from_row(row: dict[str, Any]) -> Endpoint:
    secrets = tuple(
        Secret(s["sealed"], datetime.fromisoformat(s["valid_until"]) if s["valid_until"] else None)
        for s in row["secrets"]
    )
    return Endpoint(
        id=row["id"], url=row["url"], events=tuple(row["events"]),
        description=row["description"], enabled=row["enabled"],
        disabled_reason=row["disabled_reason"], secrets=secrets,
        created_at=row["created_at"], updated_at=row["updated_at"],
        start_seq=row["start_seq"], command_seq=row["command_seq"],
    )  # fmt: skip


class WebhookEndpointsProjection:
    name = "webhook_endpoints"
    tables: tuple[str, ...] = ("webhook_endpoints",)
    per_message = False
    appends_only = False
    reads: frozenset[str] | None = frozenset(ENDPOINT_EVENTS)

    async def apply(self, conn: AsyncConnection, batch: list[Stored], tables: Tables) -> None:
        items = [(i.seq, i.event) for i in batch if i.event.type in ENDPOINT_EVENTS]
        if not items:
            return
        ids = list({e.message_id for _, e in items})
        table = tables("webhook_endpoints")
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.SQL("SELECT * FROM {} WHERE id = ANY(%s)").format(table), (ids,))
            before = {r["id"]: from_row(r) for r in await cur.fetchall()}
        after = fold_all(items, before)
        rows = [to_row(after[i]) for i in ids if i in after]
        await conn.execute(sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(table), (ids,))
        await execute_many(
            conn,
            sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                table, sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
                sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)),
            ),
            rows,
        )  # fmt: skip
