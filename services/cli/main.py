"""Entry point of the `jetpost` console script."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from rich.console import Console
from rich.markup import escape

from services.api.cli import add_keys_arguments, keys_command, run_with_api
from services.capture import CaptureSink
from services.cli.cancel import cancel_message
from services.cli.config_check import unknown_variables
from services.cli.dev import run_dev, with_dev_database
from services.cli.dkim import add_arguments as add_dkim_arguments
from services.cli.dkim import dkim_command
from services.cli.forget import add_arguments as add_forget_arguments
from services.cli.forget import forget_command
from services.cli.processes import RUNNABLE
from services.cli.replay import run_replay
from services.cli.send import add_send_arguments, command_of, precheck_send, publish_command
from services.cli.stopping import stop_on_signals
from services.cli.streams import add_streams_arguments, streams_command
from services.cli.suppress import add_arguments as add_suppress_arguments
from services.cli.suppress import publish_suppression
from services.cli.tap import add_inspect_arguments, add_tap_arguments, inspect_command, tap_command
from services.cli.webhooks import add_arguments as add_webhooks_arguments
from services.cli.webhooks import webhooks_command
from services.renderer.catalog import CatalogError
from services.runner import build_env
from shared.event_loop import run_loop
from shared.logs import configure_logging
from shared.migrate import migrate
from shared.settings import ConfigError, Settings, load_settings
from shared.telemetry import tracing


def _version() -> str:
    try:
        return version("jetpost")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jetpost", description="Event-sourced mail delivery.")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="run everything on embedded defaults")
    run = sub.add_parser("run", help="run one or more services against JETPOST_NATS_URL")
    run.add_argument("services", nargs="+", choices=(*RUNNABLE, "api"),
                     help="the services to run in this process")  # fmt: skip
    add_send_arguments(sub.add_parser("send", help="publish a send command; prints its message id"))
    cancel = sub.add_parser("cancel", help="cancel a message nothing was handed to a provider for")
    cancel.add_argument("message_id", help="the message to cancel")
    cancel.add_argument("--reason", default="", help="recorded in the cancelled event")
    add_suppress_arguments(sub.add_parser("suppress", help="add an address to the suppression set"),
                           reason=True)  # fmt: skip
    add_suppress_arguments(
        sub.add_parser("unsuppress", help="remove an address from the suppression set"),
        reason=False,
    )
    add_forget_arguments(sub.add_parser("forget", help="erase an address (right to erasure)"))
    sub.add_parser("capture", help="run the SMTP capture sink alone (.eml files)")
    sub.add_parser("migrate", help="apply database migrations to JETPOST_DATABASE_URL")
    replay = sub.add_parser("replay", help="rebuild read models from MAIL_EVT, then swap them in")
    replay.add_argument("projections", nargs="*", metavar="NAME",
                        help="the read models to rebuild (default: all)")  # fmt: skip
    replay.add_argument(
        "--dry-run", action="store_true",
        help="rebuild beside the live models and show what changes in suppressions",
    )  # fmt: skip
    replay.add_argument("--parts", type=int, default=None,
                        help="build in N processes (default: 1 per 2 CPUs, big logs)")  # fmt: skip
    add_streams_arguments(sub.add_parser("streams", help="apply nats/ definitions, show state"))
    add_tap_arguments(sub.add_parser("tap", help="print MAIL_EVT events as they happen"))
    add_inspect_arguments(sub.add_parser("inspect", help="print one message's timeline"))
    add_keys_arguments(sub.add_parser("keys", help="API keys: create, list, revoke"))
    add_webhooks_arguments(sub.add_parser("webhooks", help="webhook endpoints: add, list, rm"))
    add_dkim_arguments(sub.add_parser("dkim", help="DKIM keys: keygen, check"))
    config = sub.add_parser("config", help="configuration")
    actions = config.add_subparsers(dest="action", required=True)
    actions.add_parser("check", help="validate the JETPOST_* settings and the template catalog; "
                       "warn about unknown JETPOST_* names")  # fmt: skip
    return p


async def _run(settings: Settings, names: Sequence[str]) -> None:
    stop = stop_on_signals()
    await run_with_api(settings, names, stop)  # `api` among the names: the HTTP API too


async def _capture(settings: Settings, console: Console) -> None:
    folder = settings.data_dir.resolve() / "capture"
    sink = CaptureSink(folder, host=settings.capture_host, port=settings.capture_port)
    port = await sink.start()
    console.print(f"capturing mail on smtp://{settings.capture_host}:{port} into {folder}")
    stop = stop_on_signals()
    try:
        await stop.wait()
    finally:
        await sink.stop()


def dispatch(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    if args.command == "dev":
        run_loop(run_dev(settings, console))
    elif args.command == "run":
        run_loop(_run(settings, args.services))
    elif args.command == "send":
        command = command_of(args)
        if reason := precheck_send(settings, command):
            console.print(f"[red]jetpost: not sent: {escape(reason)}[/]")
            return 1
        asyncio.run(publish_command(settings, command))
        print(command["message_id"])
    elif args.command == "cancel":
        change = asyncio.run(cancel_message(settings, args.message_id, args.reason))
        if change.refused:
            console.print(f"[red]jetpost cancel: {change.detail}[/]")
            return 1
        print(change.status)
    elif args.command in ("suppress", "unsuppress"):
        remove = args.command == "unsuppress"
        asyncio.run(publish_suppression(settings, args, remove=remove))
        console.print(f"{args.command}: {args.address} (command published)")
    elif args.command == "forget":
        return asyncio.run(forget_command(args, settings, console))
    elif args.command == "capture":
        asyncio.run(_capture(settings, console))
    elif args.command == "migrate":
        settings = with_dev_database(settings)
        if not settings.database_url:
            raise ConfigError("JETPOST_DATABASE_URL: required for migrate")
        applied = asyncio.run(migrate(settings.database_url, settings.migrations_dir))
        console.print(f"applied {len(applied)} migration(s): {', '.join(applied) or '-'}")
    elif args.command == "replay":
        settings = with_dev_database(settings)
        run_loop(run_replay(settings, args.projections, console, args.dry_run, args.parts))
    elif args.command == "streams":
        return asyncio.run(streams_command(settings, console, args.apply, args.yes))
    elif args.command == "tap":
        return tap_command(args, settings, console)
    elif args.command == "inspect":
        return inspect_command(args, settings, console)
    elif args.command == "keys":
        return keys_command(args, with_dev_database(settings), console)
    elif args.command == "webhooks":
        return asyncio.run(webhooks_command(args, settings, console))
    elif args.command == "dkim":
        return dkim_command(args, settings, console)
    elif args.command == "config":
        build_env(settings)
        if unknown := unknown_variables(os.environ):
            for name, hint in unknown:
                console.print(f"[yellow]warning: {name} is not a jetpost setting{hint}[/]")
            return 1
        console.print("configuration OK")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console(stderr=True)
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        tracing.configure(settings.trace_console, f"jetpost-{args.command}")
        return dispatch(args, settings, console)
    except (ConfigError, CatalogError, ValueError, OSError) as exc:
        console.print(f"[red]jetpost: {exc}[/]", soft_wrap=True)  # one line, as said
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        tracing.shutdown()


if __name__ == "__main__":
    sys.exit(main())
