"""Sending many mails through the running services and counting how they ended."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import uuid
from collections import Counter

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from services.capture import CapturedMail
from shared.subjects import CMD_SEND, CMD_STREAM, EVT_STREAM, OPS_STREAM

TERMINAL = ("delivered", "bounced", "failed", "rejected", "render_failed", "suppressed")


async def send_many(js: JetStreamContext, recipients: list[str], tag: str = "") -> list[str]:
    ids = []
    for i, to in enumerate(recipients):
        mid = uuid.uuid4().hex
        body = {"to": to, "subject": f"mail {tag}{i}", "text": "hello", "message_id": mid}
        await js.publish(CMD_SEND, json.dumps(body).encode(), stream=CMD_STREAM)
        ids.append(mid)
    return ids


async def outcomes(js: JetStreamContext, ids: list[str]) -> dict[str, list[str]]:
    """Message id -> the terminal event types it has (each should have exactly one)."""
    wanted = set(ids)
    found: dict[str, list[str]] = {mid: [] for mid in ids}
    for kind in TERMINAL:
        info = await js.stream_info(EVT_STREAM, subjects_filter=f"mail.evt.*.{kind}")
        for subject, count in (info.state.subjects or {}).items():
            mid = subject.split(".")[2]
            if mid in wanted:
                found[mid].extend([kind] * count)
    return found


async def wait_settled(
    js: JetStreamContext, ids: list[str], timeout: float = 60.0
) -> dict[str, list[str]]:
    """Bounded polling until every message has a terminal event."""
    async with asyncio.timeout(timeout):
        while True:
            found = await outcomes(js, ids)
            if all(found.values()):
                return found
            await asyncio.sleep(0.1)


async def count_events(js: JetStreamContext, ids: list[str], kind: str) -> int:
    info = await js.stream_info(EVT_STREAM, subjects_filter=f"mail.evt.*.{kind}")
    wanted = set(ids)
    subjects = info.state.subjects or {}
    return sum(n for s, n in subjects.items() if s.split(".")[2] in wanted)


def copies(received: list[CapturedMail]) -> Counter[str]:
    """How many copies of each Message-ID a sink got."""
    ids = Counter[str]()
    for mail in received:
        msg = email.message_from_bytes(mail.data, policy=email.policy.default)
        ids[str(msg["Message-ID"])] += 1
    return ids


async def ops_subjects(js: JetStreamContext) -> list[str]:
    """Every operations event's subject, in order."""
    info = await js.stream_info(OPS_STREAM)
    if not info.state.messages:
        return []
    sub = await js.subscribe(
        "mail.ops.>", stream=OPS_STREAM, ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )  # fmt: skip
    try:
        return [(await sub.next_msg(timeout=5)).subject for _ in range(info.state.messages)]
    finally:
        await sub.unsubscribe()


async def wait_for_ops(js: JetStreamContext, subject: str, count: int = 1) -> None:
    async with asyncio.timeout(30):
        while True:
            if (await ops_subjects(js)).count(subject) >= count:
                return
            await asyncio.sleep(0.1)
