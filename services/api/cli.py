"""The API's part of the `jetpost` CLI: `keys create|list|revoke`, and serving the
API beside other jobs (`jetpost run api ...`, `jetpost dev`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

from services.api.app import create_app
from services.api.keys import SCOPES, create_key, list_keys, parse_scopes, revoke_key
from services.api.server import ApiServer
from services.api.workers import api_workers
from services.cli.processes import run_all
from shared.collector import freeze_start_up
from shared.ports import binding
from shared.settings import ConfigError, Settings

log = logging.getLogger("jetpost.api")


def add_keys_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="keys_action", required=True)
    create = actions.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--scope", required=True, type=_scopes,
                        help=f"comma-separated: {', '.join(SCOPES)}")  # fmt: skip
    create.add_argument("--name", default="", help="a label to know the key by")
    actions.add_parser("list", help="list keys (never the keys themselves)")
    revoke = actions.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id", help="the key id (key_...), from `jetpost keys list`")


def _scopes(raw: str) -> tuple[str, ...]:
    try:
        return parse_scopes(raw)
    except ValueError as exc:  # argparse would say "invalid parse_scopes value"
        raise argparse.ArgumentTypeError(str(exc)) from None


def _database_url(settings: Settings) -> str:
    if not settings.database_url:
        raise ConfigError("JETPOST_DATABASE_URL: required for keys")
    return settings.database_url


async def _keys(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    async with await psycopg.AsyncConnection.connect(
        _database_url(settings), autocommit=True
    ) as conn:
        if args.keys_action == "create":
            key, secret = await create_key(conn, args.scope, args.name)
            print(secret)
            console.print(f"created {key.id} ({', '.join(key.scopes)}); "
                          "the key is shown only this once")  # fmt: skip
        elif args.keys_action == "list":
            table = Table("id", "name", "scopes", "created", "revoked")
            for key in await list_keys(conn):
                revoked = f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else ""
                created = f"{key.created_at:%Y-%m-%d %H:%M}"
                table.add_row(key.id, key.name, ",".join(key.scopes), created, revoked)
            Console().print(table)
        elif not await revoke_key(conn, args.id):
            console.print(f"[red]no live key {args.id!r}[/]")
            return 1
        else:
            console.print(f"revoked {args.id}")
    return 0


def keys_command(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    return asyncio.run(_keys(args, settings, console))


def api_server(settings: Settings) -> ApiServer:
    """The app bound to JETPOST_API_HOST:JETPOST_API_PORT (bound now, so the URL is known)."""
    app = create_app(settings)
    # uvicorn's own start/stop lines only when debugging; errors always.
    level = "debug" if settings.log_level.upper() == "DEBUG" else "warning"
    with binding(settings.api_host, settings.api_port, "JETPOST_API_PORT"):
        return ApiServer(app, settings.api_host, settings.api_port, level,
                         reuse_port=settings.api_workers > 1)  # fmt: skip


async def serve_beside(
    server: ApiServer,
    stop: asyncio.Event,
    other: Coroutine[Any, Any, None] | None = None,
    workers: int = 1,
) -> None:
    """Serve the API, and `other` if given, until `stop`; one failing stops both.
    `workers` > 1: as many processes answer on the API's socket (services.api.workers)."""
    other_task = asyncio.create_task(other) if other is not None else None
    stopped = asyncio.create_task(stop.wait())
    more = api_workers(server.host, server.port, workers - 1)
    exited: asyncio.Task[None] | None = None
    try:
        await more.start()
        exited = asyncio.create_task(more.exited())
        await server.start()
        freeze_start_up()
        log.info("API on %s (docs: %s/schema/swagger)", server.url, server.url)
        waits = [stopped, exited, *([other_task] if other_task else [])]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.set()
        stopped.cancel()
        gone = exited is not None and exited.done()
        if exited is not None:
            exited.cancel()
        await more.stop()
        await server.stop()
        if other_task is not None:
            await other_task  # raises what made it stop, if anything
        if gone and exited is not None:
            exited.result()  # a worker exited on its own: say so


async def run_with_api(settings: Settings, names: Sequence[str], stop: asyncio.Event) -> None:
    """`jetpost run`: the named jobs; `api` among them serves the HTTP API too."""
    others = [name for name in names if name != "api"]
    if "api" not in names:
        await run_all(settings, others, stop)
        return
    await serve_beside(
        api_server(settings),
        stop,
        run_all(settings, others, stop) if others else None,
        settings.api_workers,
    )
