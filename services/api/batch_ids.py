"""Ids for a batch's entries that a retried POST gets again.

- `Idempotency-Key` on the batch: the batch is bound to the key and its body; the
  ids of entries without their own come from the key, so the same key and body
  answer the same ids (and intake records each message once); another body is 409.
- An entry's own `idempotency_key` is claimed here, as a single send's is: the answer
  carries the id of the message that key already made, never a new one.
- A caller-chosen `message_id` that the log already has is refused (409).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any

from services.api.problems import Problem
from services.api.runtime import Runtime
from shared.commands import SendCommand
from shared.eventlog import first_of

_BATCH_NS = uuid.UUID("2b1f0d6c-7f39-4a55-9a0e-0c2f7f0e9b41")
CLAIMS_AT_ONCE = 32
FIRST_EVENTS = ("accepted", "scheduled", "queued", "rejected", "suppressed")


def body_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
                          ).hexdigest()  # fmt: skip


def keyed_id(key: str, index: int | None = None) -> str:
    """The batch id (index None) or an entry's id under a batch's idempotency key."""
    return uuid.uuid5(_BATCH_NS, f"{key}\0{'' if index is None else index}").hex


async def claim_batch(rt: Runtime, key: str, payload: dict[str, Any]) -> str:
    batch_id = keyed_id(key)
    held = await rt.bus.claim(f"batch\0{key}", batch_id, body_hash(payload))
    if not held.same_body:
        raise Problem(409, "idempotency-conflict",
                      "idempotency key already used with a different batch body",
                      batch_id=held.message_id)  # fmt: skip
    return batch_id


async def settle_ids(rt: Runtime, commands: list[SendCommand], ids: list[str]) -> list[str]:
    """Each entry's id as it will exist: held by its key, or refused when its
    caller-chosen id is taken."""
    slots = asyncio.Semaphore(CLAIMS_AT_ONCE)

    async def settle(command: SendCommand, message_id: str) -> str:
        async with slots:
            if command.idempotency_key:
                held = await rt.bus.claim(command.idempotency_key, message_id,
                                          command.body_hash())  # fmt: skip
                if not held.same_body:
                    raise Problem(409, "idempotency-conflict",
                                  f"idempotency_key {command.idempotency_key!r} already used "
                                  f"with a different body (message {held.message_id})",
                                  message_id=held.message_id)  # fmt: skip
                return held.message_id
            if command.message_id:
                await refuse_taken(rt, command.message_id)
            return message_id

    return list(await asyncio.gather(*(settle(c, m) for c, m in zip(commands, ids, strict=True))))


async def refuse_taken(rt: Runtime, message_id: str) -> None:
    with rt.bus.reachable("message id"):
        taken = await first_of(rt.bus.js, message_id, FIRST_EVENTS)
    if taken:
        raise Problem(409, "message-id-taken",
                      f"message_id {message_id!r} is already used by another message",
                      message_id=message_id)  # fmt: skip
