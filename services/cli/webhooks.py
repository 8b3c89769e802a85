"""`jetpost webhooks add|list|rm`: the customer's webhook endpoints from the command line.
Changes are published as commands (intake records them); `list` folds the endpoint
events straight from the log, so it needs NATS only."""

from __future__ import annotations

import argparse
import uuid

from rich.console import Console
from rich.table import Table

from services.cli.send import publish_command
from services.webhooks.catalog import WEBHOOK_TYPES, unknown_types
from services.webhooks.endpoint_log import current_endpoints
from services.webhooks.secrets import SecretBox, new_secret
from services.webhooks.ssrf import check_target
from shared.nats_connect import connect
from shared.settings import Settings
from shared.subjects import CMD_WEBHOOK_CREATE, CMD_WEBHOOK_DELETE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="webhooks_action", required=True)
    add = actions.add_parser("add", help="register an endpoint; its secret is printed once")
    add.add_argument("url", help="the https URL jetpost POSTs events to")
    add.add_argument("--event", action="append", default=[], metavar="TYPE",
                     help=f"repeatable; default all: {', '.join(WEBHOOK_TYPES)}")  # fmt: skip
    add.add_argument("--description", default="", help="a label to know it by")
    actions.add_parser("list", help="list endpoints (never their secrets)")
    rm = actions.add_parser("rm", help="delete an endpoint by id")
    rm.add_argument("id", help="the endpoint id, from `jetpost webhooks list`")


async def _add(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    events = tuple(dict.fromkeys(args.event)) or WEBHOOK_TYPES
    if unknown := unknown_types(events):
        raise ValueError(f"--event: unknown type(s) {', '.join(unknown)}")
    await check_target(args.url, settings.webhook_allow_private)
    endpoint_id, secret = f"whe_{uuid.uuid4().hex}", new_secret()
    command = {"endpoint_id": endpoint_id, "url": args.url, "events": events,
               "description": args.description,
               "secret": SecretBox.from_settings(settings).seal(secret)}  # fmt: skip
    await publish_command(settings, command, CMD_WEBHOOK_CREATE)
    print(f"{endpoint_id} {secret}")
    console.print(f"added {endpoint_id} -> {args.url}; the secret is shown only this once")
    return 0


async def _list(settings: Settings) -> int:
    nc = await connect(settings, name="jetpost-cli")
    try:
        endpoints = await current_endpoints(nc.jetstream())
    finally:
        await nc.close()
    table = Table("url", "events", "enabled", "description")
    table.add_column("id", no_wrap=True)  # whole, to copy into `jetpost webhooks rm`
    for e in sorted(endpoints.values(), key=lambda e: e.created_at):
        state = "yes" if e.enabled else f"no ({e.disabled_reason or 'by hand'})"
        table.add_row(e.url, ",".join(e.events), state, e.description, e.id)
    Console().print(table)
    return 0


async def webhooks_command(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    if args.webhooks_action == "add":
        return await _add(args, settings, console)
    if args.webhooks_action == "list":
        return await _list(settings)
    await publish_command(settings, {"endpoint_id": args.id}, CMD_WEBHOOK_DELETE)
    console.print(f"rm: {args.id} (command published)")
    return 0
