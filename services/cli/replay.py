"""`jetpost replay [NAME...]`: rebuild read models from the log, with a progress bar."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from projections.replay import replay
from projections.runner import build_projections
from shared.migrate import migrate
from shared.nats_connect import connect
from shared.settings import ConfigError, Settings


async def run_replay(
    settings: Settings, names: Sequence[str], console: Console, dry_run: bool = False
) -> None:
    if not settings.database_url:
        raise ConfigError("JETPOST_DATABASE_URL: required for replay")
    registry = build_projections(settings.suppression_rules)
    unknown = set(names) - set(registry)
    if unknown:
        raise ValueError(f"unknown projection(s) {sorted(unknown)}; known: {sorted(registry)}")
    chosen = [registry[n] for n in names or registry]
    await migrate(settings.database_url, settings.migrations_dir)
    nc = await connect(settings, name="jetpost-replay")
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

            result = await replay(settings.database_url, nc, chosen, progress, dry_run=dry_run)
    finally:
        await nc.close()
    if dry_run:
        for line in result.changes:
            console.print(line, soft_wrap=True, highlight=False, markup=False)
        console.print(
            f"dry run: {len(result.changes)} suppression change(s) from {result.events:,} "
            "events; nothing applied (run without --dry-run to apply)"
        )
        return
    console.print(
        f"replayed {result.events:,} events into {', '.join(p.name for p in chosen)} "
        f"in {result.seconds:.2f}s ({result.rate:,.0f} events/s), up to sequence {result.last_seq}",
        soft_wrap=True,
    )
