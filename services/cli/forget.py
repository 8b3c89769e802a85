"""`jetpost forget ADDRESS [--keep-suppression]`: erase an address (shared.erasure)."""

from __future__ import annotations

import argparse

from rich.console import Console

from shared.erasure import forget
from shared.mailbox import parse_mailbox
from shared.nats_connect import connect
from shared.nats_setup import apply_definitions, load_definitions
from shared.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("address", help="the address to erase")
    parser.add_argument(
        "--keep-suppression", action="store_true",
        help="keep a suppression entry (by hash only) so the address is not mailed again",
    )  # fmt: skip


async def forget_command(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    address = parse_mailbox(args.address).email.lower()
    nc = await connect(settings, name="jetpost-cli")
    try:
        js = nc.jetstream(timeout=10)
        await apply_definitions(js, load_definitions(settings))
        erased = await forget(
            js, address, database_url=settings.database_url,
            capture_dir=settings.data_dir / "capture", keep_suppression=args.keep_suppression,
        )  # fmt: skip
    finally:
        await nc.close()
    kept = "; a suppression entry is kept by hash" if erased.suppression_key else ""
    console.print(
        f"forgot {address}: {len(erased.messages)} message(s) purged from the log, "
        f"{erased.commands} command(s), {erased.rows} read-model row(s), "
        f"{erased.files} captured file(s){kept}",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    if not settings.database_url:
        console.print("JETPOST_DATABASE_URL unset: the read models were not cleaned")
    return 0
