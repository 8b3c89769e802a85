"""Forgetting an address (right to erasure): `jetpost forget` and
DELETE /v1/recipients/{address}.

1. The log is read once, whole: every aggregate whose events name the address (its
   messages, suppression entries, unmatched reports) is purged from MAIL_EVT
   (`mail.evt.<id>.>`), and every command in MAIL_CMD that names it is deleted (the
   server overwrites a deleted message). Reading all of it is slow on a big log, but
   nothing is missed: an index (the read model) may lag or have been trimmed.
2. The suppression set's entries for it go; with `keep_suppression` one global entry
   stays, keyed (as always) by the address's hash and holding only that hash, so the
   address is still not mailed.
3. A `forgotten` event records that it happened, with counts and no personal data.
4. Once the projections have applied the log up to that event, its read-model rows
   are deleted, then its captured mail files.

A replay afterwards brings nothing back: the log no longer holds it. Mail to the
address still in flight while this runs may append events after the purge: forget
addresses whose mail has settled (or run it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError, NoKeysError, NotFoundError

from shared.eventlog import append
from shared.events import Forgotten, event_id_for
from shared.subjects import (
    CMD_STREAM,
    EVT_PREFIX,
    EVT_STREAM,
    SOFT_BOUNCE_BUCKET,
    SUPPRESSION_BUCKET,
)
from shared.suppression_rules import Entry
from shared.suppression_set import kv_key
from shared.telemetry.metrics import FORGOTTEN

SCAN_BATCH = 1000


def mentions(address: str) -> re.Pattern[bytes]:
    """The address as a whole token (not `xbob@example.com`, not `...com.evil`)."""
    token = re.escape(address.strip().lower().encode())
    return re.compile(rb"(?<![\w.+-])" + token + rb"(?![\w-]|\.\w)", re.IGNORECASE)


@dataclass
class Erased:
    messages: list[str] = field(default_factory=list)  # aggregates purged from MAIL_EVT
    commands: int = 0
    rows: int = 0
    files: int = 0
    suppression_key: str | None = None
    event_id: str = ""


async def scan(js: JetStreamContext, stream: str, subjects: str
               ) -> AsyncIterator[tuple[int, str, bytes]]:  # fmt: skip
    """(seq, subject, data) of every message of a stream up to its last sequence now."""
    info = await js.stream_info(stream)
    last = int(info.state.last_seq)
    if not info.state.messages:
        return
    sub = await js.pull_subscribe(
        subjects, stream=stream,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE,
                              mem_storage=True, inactive_threshold=60.0),
    )  # fmt: skip
    try:
        while True:
            try:
                batch = await sub.fetch(SCAN_BATCH, timeout=2.0)
            except TimeoutError:
                return
            for msg in batch:
                seq = int(msg.metadata.sequence.stream)
                if seq > last:
                    return
                yield seq, msg.subject, msg.data or b""
                if seq == last:
                    return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def purge_log(js: JetStreamContext, address: str) -> tuple[list[str], int]:
    """Purges the aggregates and deletes the commands that name `address`."""
    pattern = mentions(address)
    aggregates: set[str] = set()
    async for _, subject, data in scan(js, EVT_STREAM, f"{EVT_PREFIX}.>"):
        if pattern.search(data):
            aggregates.add(subject.split(".")[2])
    for aggregate in sorted(aggregates):
        await js.purge_stream(EVT_STREAM, subject=f"{EVT_PREFIX}.{aggregate}.>")
    commands = [seq async for seq, _, data in scan(js, CMD_STREAM, "mail.cmd.>")
                if pattern.search(data)]  # fmt: skip
    for seq in commands:
        with contextlib.suppress(NotFoundError):
            await js.delete_msg(CMD_STREAM, seq)
    return sorted(aggregates), len(commands)


async def forget_suppressions(js: JetStreamContext, address: str, keep: bool) -> str | None:
    """Drops the address's suppression entries (every scope) and soft-bounce history;
    with `keep`, one global entry holding only the hash stays. Returns that hash."""
    global_key = kv_key(address)
    for bucket in (SUPPRESSION_BUCKET, SOFT_BOUNCE_BUCKET):
        kv = await js.key_value(bucket)
        with contextlib.suppress(NotFoundError, KeyNotFoundError, NoKeysError):
            for key in await kv.keys():
                if key == global_key or key.startswith(global_key + "."):
                    await kv.purge(key)
    if not keep:
        return None
    kv = await js.key_value(SUPPRESSION_BUCKET)
    entry = Entry(address=global_key, reason="forgotten", source="manual",
                  created_at=datetime.now(UTC))  # fmt: skip
    await kv.put(global_key, entry.model_dump_json().encode())
    return global_key


async def wait_projections(database_url: str, seq: int, timeout: float) -> None:
    """Until every projection has applied the log up to `seq` (so nothing purged is
    still on its way to the read model), at most `timeout` seconds."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while True:
                async with await psycopg.AsyncConnection.connect(database_url) as conn:
                    cur = await conn.execute("SELECT min(last_seq) FROM projection_checkpoints")
                    row = await cur.fetchone()
                if row is None or row[0] is None or row[0] >= seq:
                    return
                await asyncio.sleep(0.1)


async def forget_rows(database_url: str, address: str, aggregates: list[str]) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn, conn.transaction():
        rows = 0
        for query, arg in (
            ("DELETE FROM message_events WHERE message_id = ANY(%s)", aggregates),
            ("DELETE FROM messages WHERE id = ANY(%s) OR %s = ANY(to_addrs)"
             " OR %s = ANY(cc_addrs) OR %s = ANY(bcc_addrs)", aggregates),
            ("DELETE FROM suppressions WHERE lower(address) = %s", None),
            ("DELETE FROM suppression_soft_bounces WHERE lower(address) = %s", None),
            ("DELETE FROM suppression_changes WHERE lower(address) = %s", None),
        ):  # fmt: skip
            lowered = address.lower()
            params = ((arg, lowered, lowered, lowered) if "ANY(to_addrs)" in query
                      else (arg,) if arg is not None else (lowered,))  # fmt: skip
            rows += (await conn.execute(query, params)).rowcount
    return rows


def forget_files(folder: Path, address: str) -> int:
    """Captured mail that names the address (headers or body)."""
    if not folder.is_dir():
        return 0
    pattern, removed = mentions(address), 0
    for path in folder.glob("*.eml"):
        with contextlib.suppress(FileNotFoundError):
            if pattern.search(path.read_bytes()):
                path.unlink()
                removed += 1
                # its envelope (MAIL FROM, RCPT TO) beside it: services/capture.py
                path.with_suffix(".envelope.json").unlink(missing_ok=True)
    return removed


async def forget(
    js: JetStreamContext, address: str, *, database_url: str | None,
    capture_dir: Path | None, keep_suppression: bool = False, wait: float = 10.0,
) -> Erased:  # fmt: skip
    aggregates, commands = await purge_log(js, address)
    erased = Erased(messages=aggregates, commands=commands)
    erased.suppression_key = await forget_suppressions(js, address, keep_suppression)
    aggregate = f"forget-{uuid.uuid4().hex}"
    event = Forgotten(
        event_id=event_id_for(aggregate, "forgotten"), message_id=aggregate,
        messages=len(aggregates), commands=commands, suppression_key=erased.suppression_key,
    )  # fmt: skip
    ack = await append(js, event)
    erased.event_id = event.event_id
    if database_url:
        # once the projections have read past our own event, none of the purged events
        # can still be on its way to a row
        await wait_projections(database_url, int(ack.seq), wait)
        erased.rows = await forget_rows(database_url, address, aggregates)
    if capture_dir is not None:
        erased.files = await asyncio.to_thread(forget_files, capture_dir, address)
    FORGOTTEN.inc()
    return erased
