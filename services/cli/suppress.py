"""`jetpost suppress` / `jetpost unsuppress`: manual changes to the suppression set,
published as commands (intake turns them into events; nothing is written directly)."""

from __future__ import annotations

import argparse

from pydantic import ValidationError

from services.cli.send import publish_command
from shared.commands import SuppressCommand
from shared.nats_connect import NatsTarget
from shared.subjects import CMD_SUPPRESS, CMD_UNSUPPRESS


def add_arguments(parser: argparse.ArgumentParser, *, reason: bool) -> None:
    parser.add_argument("address", help="the address")
    parser.add_argument("--scope", default="", help="a list or tag; default: every mail")
    if reason:
        parser.add_argument(
            "--reason", default="manual", help="why (shown in the list); default: manual"
        )


async def publish_suppression(
    nats_url: NatsTarget, args: argparse.Namespace, *, remove: bool
) -> int:
    try:
        command = SuppressCommand(
            address=args.address, scope=args.scope, reason=getattr(args, "reason", "manual")
        )
    except ValidationError as exc:
        raise ValueError(f"{args.address!r}: {exc.errors()[0]['msg']}") from None
    subject = CMD_UNSUPPRESS if remove else CMD_SUPPRESS
    return await publish_command(nats_url, command.model_dump(), subject)
