"""Replay's bulk build: every projection writes its fresh tables on a connection of its
own, in a task of its own, fed batch by batch in stream order.

On one connection the work takes turns: this process folds a batch while Postgres
waits, then Postgres stores it while this process waits. Apart, Postgres stores the
timeline of one batch while the messages of the same batch are folded here, and the
reader takes in the next meanwhile. The tables are replay copies no reader sees, so
their transactions need not be one: a failure anywhere fails the replay, which
swaps nothing in (and the next replay starts the copies afresh).

The timeline's COPY was the longest of the writers (Postgres reads every event's
JSON into jsonb), so a projection that only appends (Projection.appends_only) gets
APPEND_WRITERS connections taking its batches in turn: two, measured on 2 CPUs
(bench.replay: 0.32-0.36x COPY with one, 0.38-0.39x with two, no better with three).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator, Sequence

import psycopg
from psycopg import AsyncConnection

from projections.base import DeadLetter, Progress, Projection, Stored, Tables
from projections.reader import EventReader
from projections.runner import apply_batch

# Allocations (net of frees) between collections of the youngest generation (default
# 700): twice what a replay holds at its peak (see fewer_collections).
YOUNG = 200_000
DEPTH = 2  # batches queued for each writer: enough to keep it busy, and memory bounded
APPEND_WRITERS = 2  # writers of a projection that only appends (Projection.appends_only)
Work = tuple[list[Stored], list[DeadLetter]] | None  # None: no more


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """The garbage collector runs less often while a replay builds: every event makes a
    few short-lived containers, and at the default pace collecting them took a third
    of the replay's CPU (bench.replay). The events in flight (buffered, queued,
    being written) come to some 96,000 young containers at their peak (max_batch
    5,000): at 20,000, a 200,000-event replay still made 20 young collections of 5-6 ms,
    each walking the batches in flight (4% of its CPU); at 200,000, none. Nothing a
    replay makes is cyclic garbage that must go early; the setting is the process's,
    and is put back."""
    before = gc.get_threshold()
    gc.set_threshold(YOUNG, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


async def _write(
    conn: AsyncConnection, projection: Projection, tables: Tables, queue: asyncio.Queue[Work]
) -> None:
    positions = {projection.name: 0}
    reads = projection.reads
    while (work := await queue.get()) is not None:
        batch, dead = work
        if reads is not None:  # the other types change nothing (Projection.reads)
            batch = [item for item in batch if item.event.type in reads]
        if batch or dead:
            async with conn.transaction():
                await apply_batch(conn, [projection], batch, tables, positions, dead)


async def build_bulk(
    database_url: str, reader: EventReader, projections: Sequence[Projection], tables: Tables,
    target: int, progress: Progress | None = None,
) -> tuple[int, int]:  # fmt: skip
    """Fold what `reader` hands out, up to sequence `target` at least, into `tables`;
    returns the last sequence built and how many events that was. Dead letters are
    recorded once (with the first projection's batches). A projection that only
    appends gets APPEND_WRITERS writers, which take its batches in turn."""
    writers = [(projection, lane, count) for projection in projections
               for count in [APPEND_WRITERS if projection.appends_only else 1]
               for lane in range(count)]  # fmt: skip
    queues: list[asyncio.Queue[Work]] = [asyncio.Queue(DEPTH) for _ in writers]
    last, done, turn = 0, 0, 0
    conns = [await psycopg.AsyncConnection.connect(database_url) for _ in writers]
    try:
        async with asyncio.TaskGroup() as tasks:  # one failing cancels the others
            for conn, (projection, _, _), queue in zip(conns, writers, queues, strict=True):
                tasks.create_task(_write(conn, projection, tables, queue))
            while last < target:
                batch = await reader.next_batch(timeout=5.0)
                dead = reader.dead
                if not batch and not dead:
                    raise TimeoutError(f"MAIL_EVT stopped short of sequence {target}")
                unrecorded = dead  # recorded by the first writer given this batch
                for (_, lane, count), queue in zip(writers, queues, strict=True):
                    if lane == turn % count:
                        await queue.put((batch, unrecorded))
                        unrecorded = []
                turn += 1
                last = max(batch[-1].seq if batch else 0, dead[-1].seq if dead else 0)
                done += len(batch) + len(dead)
                if progress is not None:
                    progress(done, target)
            for queue in queues:
                await queue.put(None)
    except BaseExceptionGroup as failed:  # the first failure, as one connection gives it
        raise failed.exceptions[0] from None
    finally:
        for conn in conns:
            await conn.close()
    return last, done
