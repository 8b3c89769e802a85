"""`jetpost replay [NAME...]`: rebuild read models from the log, with a progress bar."""

from __future__ import annotations

from collections.abc import Sequence

from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError
from psycopg import AsyncConnection
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from projections.base import Projection
from projections.replay import BeforeSwap, replay
from projections.runner import build_projections
from services.suppression.resync import Resynced, resync
from shared.migrate import migrate
from shared.nats_connect import connect
from shared.settings import ConfigError, Settings
from shared.subjects import SOFT_BOUNCE_BUCKET, SUPPRESSION_BUCKET


async def run_replay(
    settings: Settings, names: Sequence[str], console: Console, dry_run: bool = False,
    parts: int | None = None,
) -> None:  # fmt: skip
    if not settings.database_url:
        raise ConfigError("JETPOST_DATABASE_URL: required for replay")
    registry = build_projections(settings.suppression_rules)
    unknown = set(names) - set(registry)
    if unknown:
        raise ValueError(f"unknown projection(s) {sorted(unknown)}; known: {sorted(registry)}")
    chosen = [registry[n] for n in names or registry]
    await migrate(settings.database_url, settings.migrations_dir)
    nc = await connect(settings, name="jetpost-replay")
    resynced: list[Resynced] = []
    columns = (
        TextColumn("replaying"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>9,.0f} events/s"), TimeElapsedColumn(),
    )  # fmt: skip
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("replay", total=None, rate=0.0)

            def progress(done: int, expected: int) -> None:
                elapsed = bar.tasks[task].elapsed or 0.0
                rate = done / elapsed if elapsed else 0.0
                bar.update(task, completed=done, total=max(expected, done), rate=rate)

            result = await replay(settings.database_url, nc, chosen, progress, dry_run=dry_run,
                                  before_swap=kv_follows(nc, chosen, resynced),
                                  nats=settings, parts=parts)  # fmt: skip
    finally:
        await nc.close()
    if dry_run:
        for line in [*result.verdicts, *result.changes]:
            console.print(line, soft_wrap=True, highlight=False, markup=False)
        console.print(
            f"dry run: {len(result.verdicts)} bounce(s) judged otherwise, "
            f"{len(result.changes)} suppression change(s) from {result.events:,} "
            "events; nothing applied (run without --dry-run to apply)"
        )
        return
    console.print(
        f"replayed {result.events:,} events into {', '.join(p.name for p in chosen)} "
        f"in {result.seconds:.2f}s ({result.rate:,.0f} events/s, {result.parts} part(s)), "
        f"up to sequence {result.last_seq}",
        soft_wrap=True,
    )
    for kv in resynced:
        console.print(f"suppression set (NATS KV) updated: {kv.put} put, {kv.deleted} deleted, "
                      f"{kv.histories} soft-bounce histories")  # fmt: skip


def kv_follows(
    nc: Client, chosen: Sequence[Projection], done: list[Resynced] | None = None
) -> BeforeSwap | None:
    """A rebuilt `suppressions` also rewrites the KV set intake enforces, before the
    swap (what it did is appended to `done`). No set yet (no service ever ran on this
    NATS): nothing to rewrite."""
    if "suppressions" not in {p.name for p in chosen}:
        return None

    async def before_swap(conn: AsyncConnection) -> None:
        js = nc.jetstream()
        try:
            entries = await js.key_value(SUPPRESSION_BUCKET)
            soft_bounces = await js.key_value(SOFT_BOUNCE_BUCKET)
        except BucketNotFoundError:
            return
        outcome = await resync(conn, entries, soft_bounces)
        if done is not None:
            done.append(outcome)

    return before_swap
