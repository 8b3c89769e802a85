"""Operations events (`mail.ops.>`, stream MAIL_OPS) in `jetpost tap`: provider
circuits opening and closing, domains asking to slow down. They have their own
stream (their own sequence), so the tap follows them with a second subscription
and prints them between the mail events as they come."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError
from rich.text import Text

from shared.subjects import OPS_PREFIX, OPS_STREAM

STATE_STYLE = {"open": "bold red", "half_open": "yellow", "closed": "green", "slowed": "yellow"}


def ops_payload(data: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(data)
    except ValueError:
        return {"raw": data.decode("utf-8", "replace")}
    return payload if isinstance(payload, dict) else {"raw": payload}


def format_ops(subject: str, data: bytes, stored_at: datetime) -> Text:
    """`12:00:01  ops  provider relay1 -> open  (host:pid)`; never raises."""
    parts = subject.split(".")
    kind, name, state = [*parts, "?", "?", "?"][2:5]
    payload = ops_payload(data)
    line = Text(f"{stored_at.astimezone():%H:%M:%S}  ops  {kind} ")
    line.append(str(payload.get("domain") or payload.get("provider") or name), style="bold")
    line.append(" -> ")
    line.append(state, style=STATE_STYLE.get(state, ""))
    if "rate_factor" in payload:
        line.append(f"  rate x{payload['rate_factor']} for {payload.get('for_seconds')}s")
    if payload.get("origin"):
        line.append(f"  ({payload['origin']})", style="dim")
    return line


def ops_json(seq: int, subject: str, data: bytes) -> str:
    out = {**ops_payload(data), "ops_seq": seq, "nats_subject": subject}
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


async def subscribe_ops(
    js: JetStreamContext, everything: bool, since: datetime | None
) -> JetStreamContext.PushSubscription | None:
    """An ordered subscription on MAIL_OPS (None when the stream does not exist)."""
    config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
    if everything:
        config.deliver_policy = DeliverPolicy.ALL
    elif since is not None:
        config.deliver_policy, config.opt_start_time = DeliverPolicy.BY_START_TIME, since
    try:
        return await js.subscribe(
            f"{OPS_PREFIX}.>", stream=OPS_STREAM, ordered_consumer=True, config=config
        )
    except (NotFoundError, APIError):
        return None


async def pump_ops(sub: JetStreamContext.PushSubscription, emit: Callable[[Msg], None]) -> None:
    last = 0
    while True:
        msg = await sub.next_msg(timeout=None)
        seq = msg.metadata.sequence.stream
        if seq > last:  # a restarted ordered consumer may send some again
            last = seq
            emit(msg)
