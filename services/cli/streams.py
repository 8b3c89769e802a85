"""`jetpost streams`: apply the nats/ definitions as every start-up does, then show
each stream and bucket (replicas, leader, peers, messages).

Start-up never lowers replicas or drops a subject of a live stream (it logs the
difference instead); `jetpost streams --apply` makes those changes on purpose, after
showing them and asking (`--yes` for scripts).
"""

from __future__ import annotations

import argparse

from nats.js import JetStreamContext
from rich.console import Console

from shared.nats_connect import connect
from shared.nats_plan import Plan
from shared.nats_setup import Definitions, apply_definitions, load_definitions
from shared.settings import Settings


def add_streams_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--apply", action="store_true",
        help="also make the changes start-up holds back (fewer replicas, dropped subjects)",
    )  # fmt: skip
    parser.add_argument("--yes", action="store_true", help="with --apply: do not ask")


def _print(console: Console, title: str, lines: list[str]) -> None:
    if lines:
        console.print(title)
        for line in lines:
            console.print(f"  {line}", soft_wrap=True, highlight=False, markup=False)


def _confirmed(console: Console) -> bool:
    try:
        answer = console.input("Apply these changes? [y/N] ")
    except EOFError:  # not interactive: only --yes applies
        return False
    return answer.strip().lower() in ("y", "yes")


async def _apply_held(js: JetStreamContext, definitions: Definitions, console: Console,
                      yes: bool) -> bool:  # fmt: skip
    """The held-back changes: shown, confirmed, applied. False if declined."""
    preview: list[Plan] = await apply_definitions(js, definitions, force=True, dry_run=True)
    todo = [str(c) for p in preview for c in p.changes]
    _print(console, "[bold]jetpost streams --apply will change:[/]", todo)
    _print(console, "[yellow]and cannot change:[/]", [str(h) for p in preview for h in p.held])
    if not todo:
        return True
    if not yes and not _confirmed(console):
        console.print("nothing changed.")
        return False
    await apply_definitions(js, definitions, force=True)
    console.print(f"applied {len(todo)} change(s).")
    return True


async def _show(js: JetStreamContext, definitions: Definitions, console: Console) -> None:
    names = [s.name or "" for s in definitions.streams]
    names += [f"KV_{kv.bucket}" for kv in definitions.key_values]
    names += [f"OBJ_{store.bucket}" for store in definitions.object_stores]
    for name in names:
        info = await js.stream_info(name)
        cluster = info.cluster
        where = ""
        if cluster is not None and cluster.leader and cluster.name:  # a cluster's stream
            peers = [f"{r.name}{'' if r.current else ' (behind)'}"
                     f"{' (offline)' if r.offline else ''}"
                     for r in cluster.replicas or []]  # fmt: skip
            where = f" leader={cluster.leader} peers={','.join(peers) or '-'}"
        console.print(
            f"{name:22} messages={info.state.messages} bytes={info.state.bytes} "
            f"last_seq={info.state.last_seq} replicas={info.config.num_replicas}{where}",
            soft_wrap=True, highlight=False,
        )  # fmt: skip


async def streams_command(settings: Settings, console: Console, apply: bool, yes: bool) -> int:
    nc = await connect(settings, name="jetpost-streams")
    try:
        js = nc.jetstream()
        definitions = load_definitions(settings)
        plans = await apply_definitions(js, definitions)  # what start-up does
        _print(console, "applied:", [str(c) for p in plans for c in p.changes])
        held = [str(h) for p in plans for h in p.held]
        if held and apply:
            if not await _apply_held(js, definitions, console, yes):
                return 1
        else:
            _print(console, "[yellow]not applied[/] (`jetpost streams --apply` does):", held)
        await _show(js, definitions, console)
    finally:
        await nc.close()
    return 0
