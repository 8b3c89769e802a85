"""Replay's bulk build in parts, one process per part: one Python process is the limit
(reading, parsing and folding each event costs more than Postgres takes to store it).

The projections whose rows depend only on one message's events (`per_message`) are
built by `parts` processes, each over the whole log up to the target sequence but
only for the messages whose id hashes to its part: the others it passes over unread
(projections.reader's `keep`). The projections that fold across messages (the
suppression set, keyed by address) stay in the calling process, on a consumer that
asks the server for the event types they read, in stream order.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import zlib
from collections.abc import Sequence
from multiprocessing.sharedctypes import Synchronized

import psycopg

from projections.base import Progress, Tables
from projections.bulk import fewer_collections
from projections.reader import EventReader
from projections.runner import apply_batch, build_projections
from shared.event_loop import run_loop
from shared.nats_connect import NatsTarget, connect

IDLE = 0.2  # seconds a part waits for its next event before looking at its position
STALLED = 10.0  # seconds without a delivery before a part gives up


def part_of(subject: str, parts: int) -> int:
    """The part a `mail.evt.<message_id>.<type>` event belongs to (by message id)."""
    tokens = subject.split(".")
    key = tokens[2] if len(tokens) == 4 else subject
    return zlib.crc32(key.encode()) % parts


async def build_part(
    database_url: str, nats: NatsTarget, names: Sequence[str], tables: Tables,
    part: int, parts: int, last_seq: int, max_batch: int, done: Synchronized[int] | None = None,
) -> None:  # fmt: skip
    """Fold this part's events up to `last_seq` into the `tables` copies, one
    transaction per batch; unreadable events become dead letters as in one process."""
    registry = build_projections()
    projections = [registry[n] for n in names]
    positions = dict.fromkeys(names, 0)
    nc = await connect(nats, name=f"jetpost-replay-{part}")
    try:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            reader = EventReader(nc, 1, max_batch, keep=lambda s: part_of(s, parts) == part)
            await reader.start()
            try:
                moved, seen = time.monotonic(), 0
                while not reader.done_through(last_seq):
                    if reader.seen != seen:
                        moved, seen = time.monotonic(), reader.seen
                    elif time.monotonic() - moved > STALLED:
                        raise TimeoutError(f"MAIL_EVT stopped short of sequence {last_seq}")
                    batch = [i for i in await reader.next_batch(IDLE) if i.seq <= last_seq]
                    dead = [d for d in reader.dead if d.seq <= last_seq]
                    if batch or dead:
                        async with conn.transaction():
                            await apply_batch(conn, projections, batch, tables, positions, dead)
                    if done is not None:
                        done.value = min(reader.seen, last_seq)
            finally:
                await reader.stop()
    finally:
        await nc.close()


def _main(*args: object) -> None:
    with fewer_collections():
        run_loop(build_part(*args))  # type: ignore[arg-type]


async def build_parts(
    database_url: str, nats: NatsTarget, names: Sequence[str], tables: Tables,
    parts: int, last_seq: int, max_batch: int, progress: Progress | None = None,
) -> None:  # fmt: skip
    """Run `parts` processes of `build_part` and wait for them all; any failing fails
    the whole (the caller's fresh tables are then dropped, nothing is swapped)."""
    spawn = multiprocessing.get_context("spawn")  # no fork of a running event loop
    done = [spawn.Value("q", 0) for _ in range(parts)]
    workers = [
        spawn.Process(target=_main, name=f"jetpost-replay-{part}", daemon=True,
                      args=(database_url, nats, list(names), tables, part, parts, last_seq,
                            max_batch, done[part]))
        for part in range(parts)
    ]  # fmt: skip
    for worker in workers:
        worker.start()
    try:
        while any(w.is_alive() for w in workers):
            await asyncio.sleep(0.5)
            if progress is not None:
                progress(min(d.value for d in done), last_seq)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
            worker.join()
    failed = [w.name for w in workers if w.exitcode != 0]
    if failed:
        raise RuntimeError(f"replay part(s) {failed} failed (exit codes in the log)")
