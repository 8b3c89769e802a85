"""The suppression set in NATS KV (`mail_suppressions`), which intake checks without
Postgres. Keys are hashes (KV keys allow a narrow alphabet): one per address for
the global set, one per address and scope (a list or tag) for scoped unsubscribes.
Kept by the `suppression_set` service from the log; rebuildable from it."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from datetime import datetime

from nats.js.kv import KeyValue
from pydantic import ValidationError

from shared.events import Accepted
from shared.inflight import kv_value
from shared.suppression_rules import Entry


def kv_key(address: str, scope: str = "") -> str:
    digest = hashlib.sha256(address.lower().encode()).hexdigest()[:40]
    if not scope:
        return digest
    return f"{digest}.{hashlib.sha256(scope.encode()).hexdigest()[:16]}"


async def get_entry(kv: KeyValue, address: str, scope: str = "") -> Entry | None:
    value = await kv_value(kv, kv_key(address, scope))
    if not value:  # none, or a delete marker
        return None
    try:
        return Entry.model_validate_json(value)
    except ValidationError:
        return None


async def suppressed(
    kv: KeyValue, addresses: Iterable[str], scopes: Iterable[str], now: datetime
) -> dict[str, Entry]:
    """address -> the active entry that suppresses it (globally or for one scope)."""
    wanted = [(a.lower(), s) for a in addresses for s in ("", *scopes)]
    if len(wanted) == 1:  # one recipient, no scopes: no task to gather
        found = [await get_entry(kv, *wanted[0])]
    else:
        found = list(await asyncio.gather(*(get_entry(kv, a, s) for a, s in wanted)))
    hits: dict[str, Entry] = {}
    for (address, _), entry in zip(wanted, found, strict=True):
        if entry is not None and entry.active(now) and address not in hits:
            hits[address] = entry
    return hits


async def recipient_hits(kv: KeyValue, accepted: Accepted, now: datetime) -> dict[str, Entry]:
    """The suppressed recipients of a message: every recipient against the global set,
    and against its tags (lists) unless it is transactional."""
    scopes = () if accepted.transactional else accepted.tags
    return await suppressed(kv, (m.email for m in accepted.envelope.recipients), scopes, now)
