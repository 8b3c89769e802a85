"""`jetpost replay`: rebuild read models from sequence 1 into fresh tables, then swap
them in, so readers never see a half-built model.

The build runs beside the live projections, into copies that have only their unique
indexes (the others are built once the rows are in), each projection on a connection
of its own (projections.bulk), or in parts for a large log (projections.partition).
The swap takes the checkpoint rows' locks (the live runner waits on them between its
batches), applies the last events that arrived meanwhile, replaces the live tables
and sets the checkpoints, all in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import psycopg
from nats.aio.client import Client
from nats.js import JetStreamContext
from psycopg import AsyncConnection, sql

from projections import indexes
from projections.base import Progress, Projection, Tables
from projections.bulk import build_bulk, fewer_collections
from projections.partition import IDLE, build_parts
from projections.reader import EventReader
from projections.runner import apply_batch, checkpoints
from shared.nats_connect import NatsTarget
from shared.subjects import EVT_PREFIX, EVT_STREAM, event_filter

SUFFIX = "__replay"
PARALLEL_FROM = 50_000  # events: a smaller log is rebuilt faster than a part starts


@dataclass
class ReplayResult:
    events: int
    last_seq: int
    seconds: float
    # dry runs: how the rebuilt suppression set differs from the live one
    changes: list[str] = field(default_factory=list)
    # dry runs: past bounces the rebuild judges otherwise (a changed classifier)
    verdicts: list[str] = field(default_factory=list)
    parts: int = 1  # processes the bulk was built in

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


# Run inside the swap's transaction, the rebuilt tables complete beside the live ones:
# what lives outside Postgres follows the rebuild (the NATS KV suppression set). If it
# raises, nothing is swapped.
BeforeSwap = Callable[[AsyncConnection], Awaitable[None]]


async def _last_seq(js: JetStreamContext) -> int:
    return int((await js.stream_info(EVT_STREAM)).state.last_seq)


async def _drop(conn: AsyncConnection, projections: Sequence[Projection]) -> None:
    for projection in projections:
        for table in projection.tables:
            await conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table + SUFFIX))
            )


async def _suppression_changes(conn: AsyncConnection) -> list[str]:
    """`+ address [scope]: reason` for entries the rebuild adds, `-` for ones it drops."""
    query = (
        "SELECT '+', n.address, n.scope, n.reason FROM suppressions__replay n"
        " LEFT JOIN suppressions o USING (address, scope) WHERE o.address IS NULL"
        " UNION ALL"
        " SELECT '-', o.address, o.scope, o.reason FROM suppressions o"
        " LEFT JOIN suppressions__replay n USING (address, scope) WHERE n.address IS NULL"
        " ORDER BY 2, 3, 1"
    )
    rows = await (await conn.execute(query)).fetchall()
    return [f"{sign} {address}{f' [{scope}]' if scope else ''}: {reason}"
            for sign, address, scope, reason in rows]  # fmt: skip


async def _verdict_changes(conn: AsyncConnection) -> list[str]:
    """`~ address (message): old kind (reason) -> new kind (reason)` for every past bounce
    the rebuild judges otherwise."""
    query = (
        "SELECT n.address, n.message_id, o.kind, o.reason, n.kind, n.reason"
        " FROM suppression_verdicts__replay n JOIN suppression_verdicts o"
        " USING (event_id, address)"
        " WHERE (o.kind, o.reason) IS DISTINCT FROM (n.kind, n.reason) ORDER BY n.seq"
    )
    rows = await (await conn.execute(query)).fetchall()
    return [f"~ {address} (message {message_id}): {old_kind} ({old_reason}) -> {kind} ({reason})"
            for address, message_id, old_kind, old_reason, kind, reason in rows]  # fmt: skip


async def _prepare(
    conn: AsyncConnection, projections: Sequence[Projection]
) -> list[indexes.Deferred]:
    """Empty copies of the tables, with only their unique indexes (which the upserts
    need); the others are returned, to be built once the bulk is in (projections.indexes)."""
    await _drop(conn, projections)
    deferred: list[indexes.Deferred] = []
    for projection in projections:
        for table in projection.tables:
            await conn.execute(
                sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
                    sql.Identifier(table + SUFFIX), sql.Identifier(table)
                )
            )
            deferred += await indexes.defer(conn, table + SUFFIX)
    return deferred


async def _swap(conn: AsyncConnection, table: str) -> None:
    """Replace `table` by its replay copy, and give the copy's indexes the names of the
    ones they replace (projections.indexes.live_names)."""
    renames = await indexes.renames(conn, table, table + SUFFIX)
    constraints = await conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass"
        " AND contype IN ('p', 'u', 'x')",
        (table + SUFFIX,),
    )
    owned = {name for (name,) in await constraints.fetchall()}  # renamed as constraints
    await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
    await conn.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            sql.Identifier(table + SUFFIX), sql.Identifier(table)
        )
    )
    for old, new in renames:
        if old == new:
            continue
        if old in owned:
            await conn.execute(
                sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                    sql.Identifier(table), sql.Identifier(old), sql.Identifier(new)
                )
            )
        else:
            await conn.execute(
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    sql.Identifier(old), sql.Identifier(new)
                )
            )


async def replay(
    database_url: str,
    nc: Client,
    projections: Sequence[Projection],
    progress: Progress | None = None,
    max_batch: int = 5000,
    dry_run: bool = False,
    before_swap: BeforeSwap | None = None,
    nats: NatsTarget | None = None,
    parts: int | None = None,
) -> ReplayResult:
    """Rebuild and swap in; with `dry_run`, rebuild up to now, report what differs in
    the suppression set, and drop the rebuilt tables again. Given how to reach NATS
    (`nats`), a large log is built in `parts` processes (projections.partition; by
    default one per two CPUs from PARALLEL_FROM events on)."""
    with fewer_collections():
        return await _replay(database_url, nc, projections, progress, max_batch, dry_run,
                             before_swap, nats, parts)  # fmt: skip


async def _replay(
    database_url: str, nc: Client, projections: Sequence[Projection], progress: Progress | None,
    max_batch: int, dry_run: bool, before_swap: BeforeSwap | None, nats: NatsTarget | None,
    parts: int | None,
) -> ReplayResult:  # fmt: skip
    js = nc.jetstream()
    names = [p.name for p in projections]
    tables = Tables(SUFFIX)
    positions = dict.fromkeys(names, 0)
    started = time.perf_counter()
    done = 0
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        async with conn.transaction():
            deferred = await _prepare(conn, projections)
        state = (await js.stream_info(EVT_STREAM)).state
        target = int(state.last_seq)
        parts = _parts(parts, int(state.messages))
        if nats is None or not any(p.per_message for p in projections):
            parts = 1
        if nats is not None and parts > 1:
            await _in_parts(database_url, conn, nc, nats, projections, parts, target, max_batch,
                            progress)  # fmt: skip
            positions = dict.fromkeys(names, target)
            done = int(state.messages)
        reader = EventReader(nc, max(positions.values()) + 1, max_batch=max_batch)
        await reader.start()
        try:

            async def build_until(seq: int) -> None:
                nonlocal done
                while max(positions.values(), default=0) < seq:
                    batch = await reader.next_batch(timeout=5.0)
                    if not batch and not reader.dead:
                        raise TimeoutError(f"MAIL_EVT stopped short of sequence {seq}")
                    await apply_batch(conn, projections, batch, tables, positions, reader.dead)
                    done += len(batch) + len(reader.dead)
                    if progress is not None:
                        progress(done, seq)

            # build outside the swap's locks: each projection on a connection of its own
            if max(positions.values(), default=0) < target:
                last, built = await build_bulk(database_url, reader, projections, tables, target,
                                               progress)  # fmt: skip
                positions = dict.fromkeys(names, last)
                done += built
            if dry_run:
                changes, verdicts = [], []
                if "suppressions" in names:
                    changes = await _suppression_changes(conn)
                    verdicts = await _verdict_changes(conn)
                async with conn.transaction():
                    await _drop(conn, projections)
                seconds = time.perf_counter() - started
                last = max(positions.values(), default=0)
                return ReplayResult(done, last, seconds, changes, verdicts, parts)
            await indexes.build(database_url, deferred)
            async with conn.transaction():
                await checkpoints(conn, names, lock=True)  # live projections wait here
                await build_until(await _last_seq(js))
                if before_swap is not None:
                    await before_swap(conn)
                for projection in projections:
                    for table in projection.tables:
                        await _swap(conn, table)
                await conn.execute(
                    "UPDATE projection_checkpoints SET last_seq = %s, updated_at = now()"
                    " WHERE name = ANY(%s)",
                    (max(positions.values(), default=0), names),
                )
        finally:
            await reader.stop()
    seconds = time.perf_counter() - started
    return ReplayResult(done, max(positions.values(), default=0), seconds, parts=parts)


def _parts(parts: int | None, events: int) -> int:
    """By default one part per two CPUs: each part reads the whole log (its share of
    parsing and folding is what divides), and Postgres and NATS need CPU too; on two
    CPUs, two parts cost more CPU in all than they save (bench.replay --parts)."""
    if parts is not None:
        return max(1, parts)
    return max(1, (os.cpu_count() or 1) // 2) if events >= PARALLEL_FROM else 1


async def _in_parts(
    database_url: str, conn: AsyncConnection, nc: Client, nats: NatsTarget,
    projections: Sequence[Projection], parts: int, target: int, max_batch: int,
    progress: Progress | None,
) -> None:  # fmt: skip
    """Build up to `target`: the per-message projections in `parts` processes, the
    others here meanwhile, from only the event types they read."""
    tables = Tables(SUFFIX)
    split = [p.name for p in projections if p.per_message]
    others = [p for p in projections if not p.per_message]
    workers = asyncio.create_task(
        build_parts(database_url, nats, split, tables, parts, target, max_batch, progress)
    )
    try:
        if others:
            await _build_across(conn, nc, others, tables, target, max_batch)
        await workers
    finally:
        if not workers.done():
            workers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await workers


async def _build_across(
    conn: AsyncConnection, nc: Client, projections: Sequence[Projection], tables: Tables,
    target: int, max_batch: int,
) -> None:  # fmt: skip
    """The projections that fold across messages, up to `target`, in stream order, on a
    consumer the server filters down to the event types they read."""
    reads = [p.reads for p in projections]
    types = sorted(set().union(*filter(None, reads)))
    subjects = [f"{EVT_PREFIX}.>"] if None in reads else [event_filter(t) for t in types]
    positions = {p.name: 0 for p in projections}
    reader = EventReader(nc, 1, max_batch, subjects=subjects)
    await reader.start()
    try:
        while not reader.done_through(target):
            batch = [i for i in await reader.next_batch(IDLE) if i.seq <= target]
            dead = [d for d in reader.dead if d.seq <= target]
            if batch or dead:
                async with conn.transaction():
                    await apply_batch(conn, projections, batch, tables, positions, dead)
            elif await reader.caught_up():
                break
    finally:
        await reader.stop()
