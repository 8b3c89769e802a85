"""`jetpost send`: publish one send command to MAIL_CMD and print its message id."""

from __future__ import annotations

import argparse
import json
import secrets
import uuid
from datetime import datetime
from typing import Any

from services.precheck import check_send
from services.renderer.catalog import TemplateCatalog
from shared.nats_connect import NatsTarget, connect
from shared.settings import Settings
from shared.subjects import CMD_SEND, CMD_STREAM
from shared.tokens import KeyRing


def add_send_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--to",
        action="append",
        required=True,
        metavar="ADDRESS",
        help="recipient, 'Name <addr>' or bare (repeatable)",
    )
    p.add_argument("--cc", action="append", default=[], metavar="ADDRESS", help="(repeatable)")
    p.add_argument("--bcc", action="append", default=[], metavar="ADDRESS", help="(repeatable)")
    p.add_argument(
        "--reply-to", action="append", default=[], metavar="ADDRESS", help="(repeatable)"
    )
    p.add_argument("--from", dest="sender", metavar="ADDRESS", help="default: JETPOST_FROM")
    p.add_argument("--template", help="a template of the catalog (JETPOST_TEMPLATE_DIR)")
    p.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template variable (repeatable); a JSON value keeps its type",
    )
    p.add_argument("--subject", help="literal content: the subject (instead of --template)")
    p.add_argument("--html", help="literal content: the HTML part")
    p.add_argument("--text", help="literal content: the text part")
    p.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="an extra header, e.g. 'X-Campaign: spring' (repeatable)",
    )
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        help="a label (repeatable); the first is the list one can unsubscribe from",
    )
    p.add_argument(
        "--transactional",
        action="store_true",
        help="account mail: no List-Unsubscribe, only global suppressions apply",
    )
    p.add_argument(
        "--track",
        action="append",
        default=[],
        choices=TRACKING,
        help="track opens and/or clicks (repeatable); default: JETPOST_TRACK_*",
    )
    p.add_argument(
        "--at",
        dest="send_at",
        metavar="TIME",
        help="send then: ISO 8601 with a zone, e.g. 2026-12-24T09:00:00+01:00",
    )
    p.add_argument("--idempotency-key", metavar="KEY",
                   help="the same key with the same content gives one message")  # fmt: skip


TRACKING = ("opens", "clicks", "none")


def command_of(args: argparse.Namespace) -> dict[str, Any]:
    command = build_command(
        args.to, args.template, args.var, args.subject, args.html, args.text,
        args.sender, args.tag, args.idempotency_key, send_at=args.send_at,
    )  # fmt: skip
    for field, values in (("cc", args.cc), ("bcc", args.bcc), ("reply_to", args.reply_to)):
        if values:
            command[field] = values
    if args.header:
        command["headers"] = dict(parse_header(h) for h in args.header)
    if args.transactional:
        command["transactional"] = True
    if args.track:
        command["track"] = {kind: kind in args.track for kind in ("opens", "clicks")}
    return command


def parse_header(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"--header expects NAME:VALUE, got {raw!r}")
    return name.strip(), value.strip()


def precheck_send(settings: Settings, command: dict[str, Any]) -> str | None:
    """The reason the command would be refused or not render (services.precheck)."""
    keys = KeyRing([secrets.token_bytes(32)])  # previews' throwaway key: nothing is sent
    catalog = TemplateCatalog.load(settings.template_dir, keys=keys)
    return check_send(command, catalog, settings.sender_from, settings.mail_domain)


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
    *,
    send_at: str | None = None,
) -> dict[str, Any]:
    command: dict[str, Any] = {"to": to, "message_id": uuid.uuid4().hex}
    if send_at is not None:
        when = datetime.fromisoformat(send_at)  # ValueError: a clear CLI error
        if when.utcoffset() is None:
            raise ValueError(f"--at {send_at!r}: give a time zone, e.g. +01:00 or Z")
        command["send_at"] = when.isoformat()
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
