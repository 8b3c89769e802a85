"""After `jetpost replay suppressions`: the NATS KV suppression set (what intake
enforces) made to agree with the rebuilt read model. Without it, changed rules would
change only Postgres: the API would list an address as suppressed while intake kept
delivering to it.

It runs inside the replay's swap transaction (projections.replay `before_swap`),
reading the rebuilt tables beside the live ones: entries the rebuild adds or changes
are put, entries it drops are deleted from KV unless something newer replaced them
there, and the soft-bounce histories the live service counts with are brought along.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from pydantic import ValidationError

from services.suppression.handlers import HISTORY, SuppressionSet
from shared.suppression_rules import Entry, Rules
from shared.suppression_set import kv_key

log = logging.getLogger("jetpost.suppression")

# Plain constant SQL (no values in it): the rebuilt table beside the live one.
CHANGED = (
    "SELECT n.address, n.scope, n.reason, n.source, n.message_id, n.event_id, n.created_at,"
    " n.expires_at FROM suppressions__replay n LEFT JOIN suppressions o USING (address, scope)"
    " WHERE o.address IS NULL OR (o.event_id, o.reason, o.expires_at)"
    " IS DISTINCT FROM (n.event_id, n.reason, n.expires_at)"
)
DROPPED = (
    "SELECT o.address, o.scope, o.reason, o.source, o.message_id, o.event_id, o.created_at,"
    " o.expires_at FROM suppressions o"
    " LEFT JOIN suppressions__replay n USING (address, scope) WHERE n.address IS NULL"
)
HISTORIES = (
    "SELECT n.address, n.history FROM suppression_soft_bounces__replay n"
    " LEFT JOIN suppression_soft_bounces o USING (address)"
    " WHERE o.history IS DISTINCT FROM n.history"
)


@dataclass(frozen=True)
class Resynced:
    put: int
    deleted: int
    histories: int


async def resync(conn: AsyncConnection, entries: KeyValue, soft_bounces: KeyValue) -> Resynced:
    async with conn.cursor(row_factory=dict_row) as cur:
        changed = [Entry(**row) for row in await (await cur.execute(CHANGED)).fetchall()]
        dropped = [Entry(**row) for row in await (await cur.execute(DROPPED)).fetchall()]
        histories = await (await cur.execute(HISTORIES)).fetchall()
    kv = SuppressionSet(entries=entries, soft_bounces=soft_bounces, rules=Rules())
    for entry in changed:
        await kv.put(entry)
    deleted = 0
    for entry in dropped:
        deleted += await _delete(entries, entry)
    for row in histories:
        pairs = [(eid, at) for eid, at in row["history"]]
        await soft_bounces.put(
            kv_key(row["address"]), HISTORY.dump_json(HISTORY.validate_python(pairs))
        )
    log.info("suppression set resynced: %d put, %d deleted, %d soft histories",
             len(changed), deleted, len(histories))  # fmt: skip
    return Resynced(len(changed), deleted, len(histories))


async def _delete(entries: KeyValue, entry: Entry) -> bool:
    """Delete the KV entry the live table had, unless KV holds a newer one."""
    key = kv_key(entry.address, entry.scope)
    try:
        stored = await entries.get(key)
    except KeyNotFoundError:
        return False
    if not stored.value:
        return False
    try:
        current = Entry.model_validate_json(stored.value)
    except ValidationError:
        return False
    if current.event_id != entry.event_id or current.removed:
        return False
    try:
        await entries.delete(key, last=stored.revision)
    except KeyWrongLastSequenceError:
        return False  # changed meanwhile: the live service's word stands
    return True
