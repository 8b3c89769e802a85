"""Idempotency keys in the `mail_idempotency` KV bucket: key -> (message id, body hash).

Used by the API (to answer 202 with the same id, or 409, at once) and by intake
(for commands published straight to NATS). Entries live JETPOST_IDEMPOTENCY_TTL,
longer than the stream's duplicate window.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue


def kv_key(key: str) -> str:
    """KV keys allow a narrow alphabet; the caller's key may hold anything."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    message_id: str  # the message the key belongs to
    same_body: bool  # False: the key was used before with other content


async def claim(kv: KeyValue, key: str, message_id: str, body_hash: str) -> Claim:
    """Bind `key` to this message and body, or report who holds it."""
    entry = {"message_id": message_id, "body_hash": body_hash}
    try:
        await kv.create(kv_key(key), json.dumps(entry).encode())
        return Claim(message_id, True)
    except KeyWrongLastSequenceError:
        held = json.loads((await kv.get(kv_key(key))).value or b"{}")
    return Claim(str(held.get("message_id")), held.get("body_hash") == body_hash)
