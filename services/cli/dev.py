"""`jetpost dev`: everything on one machine, in one terminal, on embedded defaults.

Starts (unless JETPOST_NATS_URL / JETPOST_DATABASE_URL / JETPOST_SMTP_URL point
elsewhere) a real nats-server with JetStream, a real PostgreSQL (migrated) and an
SMTP capture sink that keeps every mail as an .eml file, then every service.
Data lives under JETPOST_DATA_DIR and survives a restart; Ctrl-C stops it all.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from rich.console import Console

from services.api.cli import api_server, serve_beside
from services.capture import CaptureSink
from services.cli.processes import RUNNABLE, run_all
from services.cli.stopping import stop_on_signals
from services.runner import build_env
from shared.embedded import EmbeddedNats, embedded_postgres
from shared.migrate import migrate
from shared.settings import Settings, redact_url


@contextlib.asynccontextmanager
async def dev_stack(settings: Settings) -> AsyncIterator[dict[str, str]]:
    """Start what the settings do not point elsewhere; yield where everything is."""
    data = settings.data_dir.resolve()
    where = {"data folder": str(data)}
    with contextlib.ExitStack() as stack:
        nats_url = settings.nats_url
        if not nats_url:
            server = EmbeddedNats(store_dir=data / "nats", port=settings.nats_port)
            nats_url = server.start()
            stack.callback(server.stop)
        where["NATS"] = nats_url
        db_url = settings.database_url or stack.enter_context(embedded_postgres(data / "pg"))
        where["database"] = db_url
        await migrate(db_url, settings.migrations_dir)
        sink = None
        if not settings.smtp_url and not settings.providers and settings.provider == "smtp":
            sink = CaptureSink(data / "capture", port=settings.capture_port)
            port = await sink.start()
            where["capture folder"] = str(data / "capture")
            where["SMTP"] = f"smtp://127.0.0.1:{port}"
        elif settings.providers:
            where["providers"] = settings.providers
        else:
            where["SMTP"] = settings.smtp_url or "(provider log: mail is written to the log)"
        try:
            yield where
        finally:
            if sink is not None:
                await sink.stop()


async def run_dev(settings: Settings, console: Console) -> None:
    build_env(settings)  # a broken template stops us here, before anything starts
    stop = stop_on_signals()
    async with dev_stack(settings) as where:
        running = settings.model_copy(
            update={"nats_url": where["NATS"], "database_url": where["database"]}
            | ({"smtp_url": where["SMTP"]} if "capture folder" in where else {})
        )
        api = api_server(running)  # bound now: its URL is printed with the rest
        where["API"] = f"{api.url}  (docs {api.url}/schema/swagger)"
        where["bounces"] = f"smtp://{settings.bounce_host}:{settings.bounce_port} (DSN/ARF in)"
        console.print("[bold green]jetpost dev[/] is up:")
        for name, value in where.items():
            console.print(f"  {name:15} {redact_url(value)}", soft_wrap=True, highlight=False)
        console.print(
            f"  an API key:     JETPOST_DATABASE_URL='{where['database']}' "
            "jetpost keys create --scope send,read",
            soft_wrap=True,
            highlight=False,
        )
        console.print(
            "  send a mail:    jetpost send --to alice@example.com "
            "--template welcome --var name=Alice",
            soft_wrap=True,
        )
        console.print("Ctrl-C stops everything.")
        # the API serves the public links; pg-bridge only when it has a database to watch
        skip = {"public"} | (set() if settings.bridge_database_url else {"pg-bridge"})
        jobs = [name for name in RUNNABLE if name not in skip]
        await serve_beside(api, stop, run_all(running, jobs, stop))
    console.print("stopped.")
