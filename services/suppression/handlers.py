"""suppression_set's subscriber: manual changes and feedback (through the rules) in,
the KV set intake checks updated, then ack. KV writes are idempotent puts and
deletes; the soft-bounce history is updated with compare-and-set, and a bounce seen
twice (a redelivery) is counted once."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from faststream.nats import NatsMessage
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import TypeAdapter, ValidationError

from projections.suppressions import manual_entry
from shared.consumers import TRANSIENT_ERRORS, retry_delay
from shared.events import Event, SuppressionAdded, SuppressionRemoved, parse_event
from shared.suppression_rules import Entry, Rules, SoftHistory, affected, decide
from shared.suppression_set import kv_key

log = logging.getLogger("jetpost.suppression")
HISTORY: TypeAdapter[list[tuple[str, datetime]]] = TypeAdapter(list[tuple[str, datetime]])


@dataclass
class SuppressionSet:
    entries: KeyValue
    soft_bounces: KeyValue
    rules: Rules

    async def handle(self, msg: NatsMessage) -> None:
        raw = msg.raw_message
        try:
            event = parse_event(raw.data)
        except (ValidationError, ValueError) as exc:
            log.error("unreadable event on %s, skipped: %s", raw.subject, exc)
            await msg.ack()
            return
        try:
            await self.apply(event)
        except TRANSIENT_ERRORS as exc:
            log.warning("suppression set not updated, will retry: %r", exc)
            await msg.nack(delay=retry_delay(raw.metadata.num_delivered))
            return
        await msg.ack()

    async def give_up(self, msg: NatsMessage, exc: BaseException) -> None:
        """Nothing to record: the KV set is derived from the log and `jetpost replay` /
        a restart from the log can rebuild it; say so loudly."""
        log.error("suppression set: skipped %s after repeated failures: %r",
                  msg.raw_message.subject, exc)  # fmt: skip

    async def apply(self, event: Event) -> None:
        if isinstance(event, SuppressionAdded | SuppressionRemoved):
            await self.put(manual_entry(event))  # a removal is kept as a marked entry
        else:
            for address in affected(event):
                await self.feedback(event, address)

    async def put(self, entry: Entry) -> None:
        """Store an entry unless a newer manual change is there (compare-and-set)."""
        key, data = kv_key(entry.address, entry.scope), entry.model_dump_json().encode()
        while True:
            try:
                stored = await self.entries.get(key)
            except KeyNotFoundError:
                stored = None
            current = None
            if stored is not None and stored.value:
                with contextlib.suppress(ValidationError):
                    current = Entry.model_validate_json(stored.value)
            if not entry.supersedes(current.command_seq if current else None):
                return
            try:
                if stored is None:
                    await self.entries.create(key, data)
                else:
                    await self.entries.update(key, data, last=stored.revision)
            except KeyWrongLastSequenceError:
                continue
            verb = "unsuppressed" if entry.removed else "suppressed"
            log.info("%s %s (%s)", verb, entry.address, entry.reason)
            return

    async def feedback(self, event: Event, address: str) -> None:
        key = kv_key(address)
        while True:
            history, revision = await self._history(key)
            entry, new_history = decide(event, address, history, self.rules)
            if new_history != history:
                data = HISTORY.dump_json(list(new_history))
                try:
                    if revision is None:
                        await self.soft_bounces.create(key, data)
                    else:
                        await self.soft_bounces.update(key, data, last=revision)
                except KeyWrongLastSequenceError:
                    continue  # another worker changed it: decide again on the new history
            if entry is not None:
                await self.put(entry)
            return

    async def _history(self, key: str) -> tuple[SoftHistory, int | None]:
        try:
            stored = await self.soft_bounces.get(key)
        except KeyNotFoundError:
            return (), None
        if not stored.value:
            return (), stored.revision
        return tuple(HISTORY.validate_json(stored.value)), stored.revision
