"""A held message released (a schedule falling due, the bulk lane's turn) is screened
against the suppression set again, as intake screened it: an address suppressed while
the message waited is left out; with no `to` recipient left it becomes `suppressed`."""

from __future__ import annotations

from nats.js.kv import KeyValue

from services.intake.logic import without_suppressed
from shared.events import Accepted, Suppressed
from shared.suppression_set import recipient_hits


async def screened(suppressions: KeyValue, accepted: Accepted) -> Accepted | Suppressed:
    hits = await recipient_hits(suppressions, accepted, accepted.occurred_at)
    return without_suppressed(accepted, hits)
