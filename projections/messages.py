"""`messages` (one row per message: its folded state) and `daily_stats` (outcome
counts per day and template).

Per batch: load the rows of the batch's messages, fold the new events onto them
(shared.fold, the same fold the API's `as_of` reads use), and write them back: the
messages new to the table with one COPY, the others with one COPY into a staging
table and one upsert.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from projections.base import Stored, Tables, copy_rows, pg_text
from services.webhooks.endpoints import ENDPOINT_EVENTS
from shared.fold import MessageState, fold_fields

# Events counted in daily_stats (by the day they happened).
COUNTED = frozenset({
    "accepted", "rejected", "suppressed", "rendered", "render_failed", "delivered",
    "deferred", "bounced", "failed", "cancelled", "complained", "opened", "clicked",
    "unsubscribed",
})  # fmt: skip
# (webhook endpoints and erasures are their own aggregates too, not messages)
IGNORED = frozenset({"suppression_added", "suppression_removed", "feedback_unmatched",
                     "forgotten", *ENDPOINT_EVENTS})  # fmt: skip

# messages columns, in table order, and how each comes from a state.
COLUMNS = (
    "id", "status", "created_at", "updated_at", "sender", "to_addrs", "cc_addrs",
    "bcc_addrs", "rcpt_domains", "subject", "template", "template_version", "tags",
    "attempts", "last_smtp_code", "last_error", "accepted_at", "rendered_at", "delivered_at",
    "bounced_at", "failed_at", "opens", "first_opened_at", "clicks", "first_clicked_at",
    "complained_at", "unsubscribed_at", "resent_as", "last_event_at", "send_at", "last_seq",
    "trace_id",
)  # fmt: skip
# Not part of the fold: the trace of the message's first traced event, kept once set.
KEPT_ONCE_SET = ("trace_id",)
RENAMED = {"id": "message_id", "to_addrs": "to", "cc_addrs": "cc", "bcc_addrs": "bcc"}


def to_row(state: MessageState, last_seq: int, trace_id: str | None = None) -> tuple[Any, ...]:
    return row_of(state.__dict__, last_seq, trace_id)


def row_of(s: dict[str, Any], last_seq: int, trace_id: str | None = None) -> tuple[Any, ...]:
    """The row of a state given as its fields (shared.fold.fold_fields)."""
    recipients = (*s["to"], *s["cc"], *s["bcc"])
    domains = sorted({a.rpartition("@")[2].lower() for a in recipients})
    return (
        s["message_id"], s["status"], s["created_at"], s["updated_at"], s["sender"],
        list(s["to"]), list(s["cc"]), list(s["bcc"]), domains, pg_text(s["subject"]),
        s["template"], s["template_version"], list(s["tags"]), s["attempts"],
        s["last_smtp_code"], pg_text(s["last_error"]), s["accepted_at"], s["rendered_at"],
        s["delivered_at"], s["bounced_at"], s["failed_at"], s["opens"],
        s["first_opened_at"], s["clicks"], s["first_clicked_at"], s["complained_at"],
        s["unsubscribed_at"], list(s["resent_as"]), s["last_event_at"], s["send_at"], last_seq,
        trace_id,
    )  # fmt: skip


ARRAYS = frozenset({"to_addrs", "cc_addrs", "bcc_addrs", "tags", "resent_as"})


def fields_of(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row back as a state's fields (arrays as the fold's tuples)."""
    return {RENAMED.get(c, c): tuple(row[c]) if c in ARRAYS else row[c] for c in COLUMNS
            if c not in ("rcpt_domains", "last_seq", *KEPT_ONCE_SET)}  # fmt: skip


class MessagesProjection:
    name = "messages"
    tables: tuple[str, ...] = ("messages", "daily_stats")
    per_message = True
    appends_only = False
    reads: frozenset[str] | None = None

    async def apply(self, conn: AsyncConnection, batch: list[Stored], tables: Tables) -> None:
        items = [i for i in batch if i.event.type not in IGNORED]
        if not items:
            return
        ids = list({i.event.message_id for i in items})
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                sql.SQL("SELECT * FROM {} WHERE id = ANY(%s)").format(tables("messages")), (ids,)
            )
            states = {r["id"]: fields_of(r) for r in await cur.fetchall()}
        groups: dict[str, list[Stored]] = {}
        for item in items:
            groups.setdefault(item.event.message_id, []).append(item)
        counts: Counter[tuple[date, str, str]] = Counter()
        # rows of messages new to the table, and of the others
        fresh: list[tuple[Any, ...]] = []
        known: list[tuple[Any, ...]] = []
        for mid, group in groups.items():
            before = states.get(mid)
            state = fold_fields([i.event for i in group], before)
            trace_id = next((i.trace_id for i in group if i.trace_id), None)
            (fresh if before is None else known).append(row_of(state, group[-1].seq, trace_id))
            template = state["template"] or ""
            for i in group:
                if i.event.type in COUNTED:
                    counts[(i.event.occurred_at.date(), template, i.event.type)] += 1
        await self._insert(conn, tables, fresh)
        await self._upsert(conn, tables, known)
        await self._count(conn, tables, counts)

    async def _insert(
        self, conn: AsyncConnection, tables: Tables, rows: list[tuple[Any, ...]]
    ) -> None:
        """Rows of messages the table does not hold (this transaction looked): COPY
        straight in, without the staging table and the upsert's second pass."""
        if not rows:
            return
        cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        copy = sql.SQL("COPY {} ({}) FROM STDIN").format(tables("messages"), cols)
        async with conn.cursor() as cur, cur.copy(copy) as out:
            await out.write(copy_rows(rows))

    async def _upsert(
        self, conn: AsyncConnection, tables: Tables, rows: list[tuple[Any, ...]]
    ) -> None:
        if not rows:
            return
        target = tables("messages")
        stage = sql.Identifier("messages_stage")
        cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        updates = sql.SQL(", ").join(
            sql.SQL("{0} = coalesce({1}.{0}, EXCLUDED.{0})" if c in KEPT_ONCE_SET
                    else "{0} = EXCLUDED.{0}").format(sql.Identifier(c), target)
            for c in COLUMNS[1:]
        )  # fmt: skip
        async with conn.cursor() as cur:
            await cur.execute(
                sql.SQL(
                    "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE messages INCLUDING DEFAULTS)"
                    " ON COMMIT DELETE ROWS"
                ).format(stage)
            )
            # empty even when the caller's transaction is a savepoint (no commit yet)
            await cur.execute(sql.SQL("TRUNCATE {}").format(stage))
            async with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, cols)) as out:
                await out.write(copy_rows(rows))
            await cur.execute(
                sql.SQL(
                    "INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage}"
                    " ON CONFLICT (id) DO UPDATE SET {updates}"
                ).format(target=target, cols=cols, stage=stage, updates=updates)
            )

    async def _count(
        self, conn: AsyncConnection, tables: Tables, counts: Counter[tuple[date, str, str]]
    ) -> None:
        if not counts:
            return
        days, templates, outcomes = (list(x) for x in zip(*counts, strict=True))
        await conn.execute(
            sql.SQL(
                "INSERT INTO {0} (day, template, outcome, count)"
                " SELECT * FROM unnest(%s::date[], %s::text[], %s::text[], %s::bigint[])"
                " ON CONFLICT (day, template, outcome)"
                " DO UPDATE SET count = {0}.count + EXCLUDED.count"
            ).format(tables("daily_stats")),
            (days, templates, outcomes, list(counts.values())),
        )
