"""`suppressions`: the addresses not to mail, each with the event that put it there.

Manual changes arrive as suppression_added / suppression_removed events; bounces and
complaints go through the suppression rules, so a replay with changed rules gives
the set those rules would have built (`jetpost replay suppressions --dry-run`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql

from projections.base import Stored, Tables, execute_many, pg_text
from shared.events import Bounced, SuppressionAdded, SuppressionRemoved
from shared.suppression_rules import Entry, Rules, SoftHistory, affected, decide, judge

FEEDBACK = frozenset({"bounced", "complained"})
MANUAL = (SuppressionAdded, SuppressionRemoved)


def manual_entry(e: SuppressionAdded | SuppressionRemoved) -> Entry:
    """A manual change as an entry; a removal is an entry marked `removed`."""
    if isinstance(e, SuppressionRemoved):
        return Entry(address=e.address, scope=e.scope, reason=e.reason, source="manual",
                     event_id=e.event_id, created_at=e.occurred_at, command_seq=e.command_seq,
                     removed=True)  # fmt: skip
    return Entry(address=e.address, scope=e.scope, reason=e.reason, source=e.source,
                 message_id=e.cause_message_id, event_id=e.event_id, created_at=e.occurred_at,
                 expires_at=e.expires_at, command_seq=e.command_seq)  # fmt: skip


class SuppressionsProjection:
    name = "suppressions"
    tables: tuple[str, ...] = ("suppressions", "suppression_soft_bounces", "suppression_changes",
                               "suppression_verdicts")  # fmt: skip
    per_message = False
    appends_only = False
    reads: frozenset[str] | None = FEEDBACK | {"suppression_added", "suppression_removed"}

    def __init__(self, rules: Rules | None = None) -> None:
        self.rules = rules or Rules()

    async def apply(self, conn: AsyncConnection, batch: list[Stored], tables: Tables) -> None:
        final: dict[tuple[str, str], tuple[Entry, int] | None] = {}  # last word per key
        addresses = {a for i in batch if i.event.type in FEEDBACK for a in affected(i.event)}
        histories = await self._histories(conn, tables, addresses)
        manual = [
            i.event for i in batch if isinstance(i.event, SuppressionAdded | SuppressionRemoved)
        ]
        changes = await self._changes(conn, tables, {(e.address, e.scope) for e in manual})
        touched: set[str] = set()
        verdicts: list[tuple[Any, ...]] = []
        for item in batch:
            e = item.event
            if isinstance(e, MANUAL):
                key, entry = (e.address, e.scope), manual_entry(e)
                if not entry.supersedes(changes.get(key)):
                    continue  # an older command, appended after a newer one
                if entry.command_seq is not None:
                    changes[key] = entry.command_seq
                final[key] = None if entry.removed else (entry, item.seq)
            elif e.type in FEEDBACK:
                if isinstance(e, Bounced):
                    verdict = judge(e, self.rules)
                    verdicts += [(e.event_id, a, e.message_id, item.seq, verdict.kind,
                                  verdict.reason, e.status) for a in affected(e)]  # fmt: skip
                for address in affected(e):
                    found, histories[address] = decide(e, address, histories.get(address, ()),
                                                       self.rules)  # fmt: skip
                    touched.add(address)
                    if found is not None:
                        final[(address, "")] = (found, item.seq)
        await self._write(conn, tables, final)
        await self._save_changes(conn, tables, changes)
        await self._save_histories(conn, tables, {a: histories[a] for a in touched})
        await self._save_verdicts(conn, tables, verdicts)

    async def _save_verdicts(
        self, conn: AsyncConnection, tables: Tables, rows: list[tuple[Any, ...]]
    ) -> None:
        await execute_many(
            conn,
            sql.SQL(
                "INSERT INTO {} (event_id, address, message_id, seq, kind, reason, status)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
            ).format(tables("suppression_verdicts")),
            [tuple(pg_text(v) for v in row) for row in rows],
        )

    async def _histories(
        self, conn: AsyncConnection, tables: Tables, addresses: set[str]
    ) -> dict[str, SoftHistory]:
        if not addresses:
            return {}
        cur = await conn.execute(
            sql.SQL("SELECT address, history FROM {} WHERE address = ANY(%s)").format(
                tables("suppression_soft_bounces")
            ),
            (list(addresses),),
        )
        return {
            address: tuple((eid, datetime.fromisoformat(at)) for eid, at in history)
            for address, history in await cur.fetchall()
        }

    async def _changes(
        self, conn: AsyncConnection, tables: Tables, keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        """The command sequence of the last manual change applied, per key."""
        if not keys:
            return {}
        cur = await conn.execute(
            sql.SQL("SELECT address, scope, command_seq FROM {} WHERE address = ANY(%s)").format(
                tables("suppression_changes")
            ),
            ([a for a, _ in keys],),
        )
        return {(a, s): seq for a, s, seq in await cur.fetchall()}

    async def _save_changes(
        self, conn: AsyncConnection, tables: Tables, changes: dict[tuple[str, str], int]
    ) -> None:
        await execute_many(
            conn,
            sql.SQL(
                "INSERT INTO {0} (address, scope, command_seq) VALUES (%s, %s, %s)"
                " ON CONFLICT (address, scope) DO UPDATE SET command_seq = EXCLUDED.command_seq"
                " WHERE {0}.command_seq < EXCLUDED.command_seq"
            ).format(tables("suppression_changes")),
            [(a, s, seq) for (a, s), seq in changes.items()],
        )

    async def _save_histories(
        self, conn: AsyncConnection, tables: Tables, histories: dict[str, SoftHistory]
    ) -> None:
        rows = [(a, json.dumps([[eid, at.isoformat()] for eid, at in h]))
                for a, h in histories.items()]  # fmt: skip
        await execute_many(
            conn,
            sql.SQL(
                "INSERT INTO {} (address, history) VALUES (%s, %s)"
                " ON CONFLICT (address) DO UPDATE SET history = EXCLUDED.history"
            ).format(tables("suppression_soft_bounces")),
            rows,
        )

    async def _write(
        self, conn: AsyncConnection, tables: Tables,
        final: dict[tuple[str, str], tuple[Entry, int] | None],
    ) -> None:  # fmt: skip
        if not final:
            return
        table = tables("suppressions")
        rows: list[tuple[Any, ...]] = [
            (e.address, e.scope, pg_text(e.reason), e.source, e.message_id, e.event_id, seq,
             e.created_at,
             e.expires_at)
            for value in final.values() if value is not None for e, seq in (value,)
        ]  # fmt: skip
        await execute_many(
            conn, sql.SQL("DELETE FROM {} WHERE address = %s AND scope = %s").format(table),
            list(final),
        )  # fmt: skip
        await execute_many(
            conn,
            sql.SQL(
                "INSERT INTO {} (address, scope, reason, source, message_id, event_id, seq,"
                " created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            ).format(table),
            rows,
        )
