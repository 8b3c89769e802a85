"""`jetpost send`: publish one send command to MAIL_CMD and print its message id."""

from __future__ import annotations

import json
import uuid
from typing import Any

from shared.nats_connect import NatsTarget, connect
from shared.subjects import CMD_SEND, CMD_STREAM


def build_command(
    to: list[str],
    template: str | None,
    variables: list[str],
    subject: str | None,
    html: str | None,
    text: str | None,
    sender: str | None,
    tags: list[str],
    idempotency_key: str | None,
) -> dict[str, Any]:
    command: dict[str, Any] = {"to": to, "message_id": uuid.uuid4().hex}
    if template:
        command["template"] = template
        command["vars"] = dict(parse_var(v) for v in variables)
    for key, value in (("subject", subject), ("html", html), ("text", text), ("from", sender)):
        if value is not None:
            command[key] = value
    if tags:
        command["tags"] = tags
    if idempotency_key:
        command["idempotency_key"] = idempotency_key
    return command


def parse_var(raw: str) -> tuple[str, Any]:
    """`name=Alice`; a value that parses as JSON (`n=3`, `xs=[1,2]`) keeps its type."""
    name, sep, value = raw.partition("=")
    if not sep or not name:
        raise ValueError(f"--var expects name=value, got {raw!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


async def publish_command(
    nats_url: NatsTarget, command: dict[str, Any], subject: str = CMD_SEND
) -> int:
    """Publish and wait for JetStream's ack; returns the command's stream sequence."""
    nc = await connect(nats_url, name="jetpost-cli")
    try:
        msg_id = command.get("message_id") or uuid.uuid4().hex
        ack = await nc.jetstream().publish(
            subject,
            json.dumps(command).encode(),
            stream=CMD_STREAM,
            headers={"Nats-Msg-Id": str(msg_id)},
        )
        return int(ack.seq)
    finally:
        await nc.close()
