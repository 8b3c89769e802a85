"""The suppression set: manual entries, hard bounces and repeated soft bounces put an
address on it (NATS KV, kept from the log); intake then records `suppressed` instead
of sending, or leaves just the suppressed recipients out. Changed rules can be tried
on past bounces with a dry-run replay."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import psycopg
from nats.aio.client import Client
from nats.js import JetStreamContext

from projections.replay import replay
from projections.runner import build_projections
from services.capture import CaptureSink
from shared.eventlog import append
from shared.events import Bounced, SuppressionAdded, SuppressionRemoved, event_id_for
from shared.settings import Settings
from shared.subjects import (
    CMD_SEND,
    CMD_STREAM,
    CMD_SUPPRESS,
    SUPPRESSION_BUCKET,
    suppression_aggregate,
)
from shared.suppression_rules import Entry, Rules
from shared.suppression_set import kv_key
from tests.conftest import JETPOST, Pipeline, Projector, service_env
from tests.eventlog_reader import wait_for_any, wait_for_event

DONE = ("delivered", "suppressed", "bounced", "rejected")


async def send(js: JetStreamContext, to: Any, **extra: Any) -> str:
    mid = uuid.uuid4().hex
    command = {"to": to, "subject": "s", "text": "t", "message_id": mid, **extra}
    await js.publish(CMD_SEND, json.dumps(command).encode(), stream=CMD_STREAM)
    return mid


async def listed(
    js: JetStreamContext, address: str, scope: str = "", *, until_removed: bool = False
) -> Entry:
    """Wait (bounded) for the suppression_set service to list an address (or to mark it
    removed): a KV watch gives the current value, then every change."""
    kv = await js.key_value(SUPPRESSION_BUCKET)
    watcher = await kv.watch(kv_key(address, scope))
    try:
        async with asyncio.timeout(20):
            while True:
                update = await watcher.updates(timeout=20)  # type: ignore[no-untyped-call]
                if update is not None and update.value:
                    entry = Entry.model_validate_json(update.value)
                    if entry.removed == until_removed:
                        return entry
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]


async def soft_bounce(js: JetStreamContext, address: str, n: int) -> None:
    mid = f"soft-{n}-{uuid.uuid4().hex[:8]}"
    await append(js, Bounced(event_id=event_id_for(mid, "bounced"), message_id=mid, kind="soft",
                             status="4.2.2", response="mailbox full", recipients=(address,),
                             source="dsn"))  # fmt: skip


async def test_manual_and_scoped_suppression(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    await js.publish(CMD_SUPPRESS, json.dumps({"address": "Bob@example.com"}).encode(),
                     stream=CMD_STREAM)  # fmt: skip
    await js.publish(CMD_SUPPRESS, json.dumps({"address": "carol@example.com", "scope": "news"})
                     .encode(), stream=CMD_STREAM)  # fmt: skip
    await listed(js, "bob@example.com")
    await listed(js, "carol@example.com", "news")

    blocked = await send(js, "bob@example.com")
    event = await wait_for_any(js, blocked, DONE)
    assert event.type == "suppressed" and getattr(event, "addresses", ()) == ("bob@example.com",)

    partial = await send(js, ["bob@example.com", "dan@example.com"])
    await wait_for_event(js, partial, "delivered")
    accepted = await wait_for_event(js, partial, "accepted")
    assert getattr(accepted, "suppressed", ()) == ("bob@example.com",)

    newsletter = await send(js, "carol@example.com", tags=["news"])
    receipt = await send(js, "carol@example.com", tags=["billing"])
    assert (await wait_for_any(js, newsletter, DONE)).type == "suppressed"
    assert (await wait_for_any(js, receipt, DONE)).type == "delivered"
    assert sorted(r for m in sink.received for r in m.rcpt_tos) == [
        "carol@example.com", "dan@example.com",
    ]  # fmt: skip


async def test_hard_bounce_then_suppressed(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    sink.script(["550 5.1.1 no such user"])
    first = await send(js, "gone@example.com")
    await wait_for_event(js, first, "bounced")
    entry = await listed(js, "gone@example.com")
    assert entry.source == "bounce" and entry.message_id == first and "5.1.1" in entry.reason
    second = await send(js, "gone@example.com")
    assert (await wait_for_any(js, second, DONE)).type == "suppressed"
    assert sink.attempts == 1


async def test_soft_bounces_add_up_and_rules_replay_dry_run(
    pipeline: Pipeline, projector: Projector, js: JetStreamContext, nc: Client,
    database_url: str,
) -> None:  # fmt: skip
    for n in range(3):  # the default rules: 3 soft bounces within 7 days
        await soft_bounce(js, "full@example.com", n)
    entry = await listed(js, "full@example.com")
    assert entry.reason.startswith("3 soft bounces")
    await soft_bounce(js, "other@example.com", 9)
    await projector.caught_up(js)

    stricter = build_projections(Rules(soft_bounce_limit=1))["suppressions"]
    dry = await replay(database_url, nc, [stricter], dry_run=True)
    assert dry.changes == ["+ other@example.com: 1 soft bounces within 7 days, 0:00:00, the "
                           "last (mailbox_full): 4.2.2 mailbox full"]  # fmt: skip
    laxer = build_projections(Rules(soft_bounce_limit=5))["suppressions"]
    assert [c[:19] for c in (await replay(database_url, nc, [laxer], dry_run=True)).changes] == [
        "- full@example.com:"
    ]


async def test_cli_suppress_and_unsuppress(
    pipeline: Pipeline, js: JetStreamContext, settings: Settings
) -> None:
    async def cli(*args: str) -> None:
        proc = await asyncio.create_subprocess_exec(JETPOST, *args, env=service_env(settings))
        assert await asyncio.wait_for(proc.wait(), 30) == 0

    await cli("suppress", "Erin@Example.com", "--reason", "asked by phone")
    entry = await listed(js, "erin@example.com")
    assert (entry.reason, entry.source) == ("asked by phone", "manual")
    assert (await wait_for_any(js, await send(js, "erin@example.com"), DONE)).type == "suppressed"

    await cli("unsuppress", "erin@example.com")
    assert (await listed(js, "erin@example.com", until_removed=True)).removed
    assert (await wait_for_any(js, await send(js, "erin@example.com"), DONE)).type == "delivered"


async def test_manual_changes_apply_in_command_order(
    pipeline: Pipeline, projector: Projector, js: JetStreamContext, database_url: str
) -> None:
    """An unsuppress (command 6) appended before the suppress it follows (command 5), as
    intake's concurrent workers may do: the address stays off the set."""
    aggregate = suppression_aggregate("late@example.com")
    removed = SuppressionRemoved(event_id=event_id_for(aggregate, "suppression_removed", 6),
                                 message_id=aggregate, address="late@example.com",
                                 command_seq=6)  # fmt: skip
    added = SuppressionAdded(event_id=event_id_for(aggregate, "suppression_added", 5),
                             message_id=aggregate, address="late@example.com", reason="old",
                             command_seq=5)  # fmt: skip
    await append(js, removed, 6)
    await append(js, added, 5)
    assert (await listed(js, "late@example.com", until_removed=True)).command_seq == 6
    await projector.caught_up(js)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM suppressions WHERE address = %s",
                                 ("late@example.com",))  # fmt: skip
        assert await cur.fetchone() == (0,)
