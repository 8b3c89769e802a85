"""`jetpost dev`: everything on one machine, in one terminal, on embedded defaults.

Starts (unless JETPOST_NATS_URL / JETPOST_DATABASE_URL / JETPOST_SMTP_URL point
elsewhere) a real nats-server with JetStream, a real PostgreSQL (migrated) and an
SMTP capture sink that keeps every mail as an .eml file, then every service.
Data lives under JETPOST_DATA_DIR and survives a restart; Ctrl-C stops it all.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from rich.console import Console

from services.api.cli import api_server, serve_beside
from services.capture import CaptureSink
from services.cli.processes import RUNNABLE, run_all
from services.cli.stopping import stop_on_signals
from services.runner import build_env
from shared.embedded import EmbeddedNats, embedded_postgres, running_postgres_url
from shared.migrate import migrate
from shared.ports import binding, ensure_free
from shared.settings import ConfigError, Settings, redact_url


@contextlib.asynccontextmanager
async def dev_stack(settings: Settings) -> AsyncIterator[dict[str, str]]:
    """Start what the settings do not point elsewhere; yield where everything is."""
    data = settings.data_dir.resolve()
    where = {"data folder": str(data)}
    with contextlib.ExitStack() as stack:
        nats_url = settings.nats_url
        if not nats_url:
            ensure_free("127.0.0.1", settings.nats_port, "JETPOST_NATS_PORT")
            server = EmbeddedNats(data / "nats", settings.nats_port, settings.nats_procs)
            nats_url = server.start()
            stack.callback(server.stop)
        where["NATS"] = nats_url
        db_url = settings.database_url or stack.enter_context(embedded_postgres(data / "pg"))
        where["database"] = db_url
        await migrate(db_url, settings.migrations_dir)
        sink = None
        if not settings.smtp_url and not settings.providers and settings.provider == "smtp":
            sink = CaptureSink(data / "capture", port=settings.capture_port)
            with binding("127.0.0.1", settings.capture_port, "JETPOST_CAPTURE_PORT"):
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


def with_dev_database(settings: Settings) -> Settings:
    """JETPOST_DATABASE_URL, else the database of a `jetpost dev` running on this data
    folder (as the NATS commands find its NATS on JETPOST_NATS_PORT)."""
    if settings.database_url:
        return settings
    url = running_postgres_url(settings.data_dir.resolve() / "pg")
    if url is None:
        raise ConfigError(f"JETPOST_DATABASE_URL: required (no `jetpost dev` database is "
                          f"running in {settings.data_dir.resolve() / 'pg'})")  # fmt: skip
    return settings.model_copy(update={"database_url": url})


def jetpost_executable() -> str:
    """This installation's `jetpost`, by its path: `.venv/bin` is rarely on PATH."""
    beside = Path(sys.executable).parent / "jetpost"
    return str(beside) if beside.exists() else "jetpost"


def next_steps(nats_url: str, database_url: str, exe: str) -> list[tuple[str, str]]:
    """Commands that work pasted into a fresh shell: the executable by its path and the
    addresses of this instance (its ports may not be the defaults)."""

    def line(env: dict[str, str], *args: str) -> str:
        assigns = [f"{name}={shlex.quote(value)}" for name, value in env.items()]
        return " ".join([*assigns, shlex.quote(exe), *map(shlex.quote, args)])

    return [
        ("an API key:", line({"JETPOST_DATABASE_URL": database_url}, "keys", "create",
                             "--scope", "send,read", "--name", "me")),
        ("send a mail:", line({"JETPOST_NATS_URL": nats_url}, "send", "--to",
                              "alice@example.com", "--template", "welcome", "--var", "name=Alice")),
        ("watch events:", line({"JETPOST_NATS_URL": nats_url}, "tap")),
    ]  # fmt: skip


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
        where["console"] = f"{api.url}/console  (sign in with an API key)"
        where["bounces"] = f"smtp://{settings.bounce_host}:{settings.bounce_port} (DSN/ARF in)"
        console.print("[bold green]jetpost dev[/] is up:")
        for name, value in where.items():
            console.print(f"  {name:15} {redact_url(value)}", soft_wrap=True, highlight=False)
        for label, line in next_steps(where["NATS"], where["database"], jetpost_executable()):
            console.print(f"  {label:15} {line}", soft_wrap=True, highlight=False, markup=False)
        console.print("Ctrl-C stops everything.")
        # the API serves the public links; pg-bridge only when it has a database to watch
        skip = {"public"} | (set() if settings.bridge_database_url else {"pg-bridge"})
        jobs = [name for name in RUNNABLE if name not in skip]
        await serve_beside(api, stop, run_all(running, jobs, stop))
    console.print("stopped.")
