"""Keeps the read models folded up to the head of MAIL_EVT.

One reader feeds every projection (each event is parsed once); each batch is one
Postgres transaction that locks the projections' checkpoint rows, lets every
projection apply the events above its own checkpoint, and moves the checkpoints.
The read model owns its position: restart, crash or replay, it resumes from what
was committed, and nothing at or below a checkpoint is applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import nats
import psycopg
from nats.aio.client import Client
from psycopg import AsyncConnection, sql

from projections.base import DeadLetter, Projection, Stored, Tables, execute_many
from projections.messages import MessagesProjection
from projections.reader import EventReader
from projections.suppressions import SuppressionsProjection
from projections.timeline import TimelineProjection
from projections.webhook_endpoints import WebhookEndpointsProjection
from shared.nats_connect import NatsTarget, connect
from shared.suppression_rules import Rules

log = logging.getLogger("jetpost.projections")


def build_projections(rules: Rules | None = None) -> dict[str, Projection]:
    """Every projection by name; the suppression rules come from the configuration."""
    built: tuple[Projection, ...] = (
        MessagesProjection(), TimelineProjection(), SuppressionsProjection(rules),
        WebhookEndpointsProjection(),
    )  # fmt: skip
    return {p.name: p for p in built}


PROJECTIONS = build_projections()  # with the default rules


async def checkpoints(
    conn: AsyncConnection, names: Sequence[str], lock: bool = False
) -> dict[str, int]:
    await conn.execute(
        "INSERT INTO projection_checkpoints (name) SELECT unnest(%s::text[])"
        " ON CONFLICT (name) DO NOTHING",
        (list(names),),
    )
    query = "SELECT name, last_seq FROM projection_checkpoints WHERE name = ANY(%s) ORDER BY name"
    cur = await conn.execute(query + (" FOR UPDATE" if lock else ""), (list(names),))
    return {name: seq for name, seq in await cur.fetchall()}


async def apply_batch(
    conn: AsyncConnection,
    projections: Sequence[Projection],
    batch: list[Stored],
    tables: Tables,
    positions: dict[str, int],
    dead: Sequence[DeadLetter] = (),
) -> None:
    """Apply to each projection what lies above its position; caller owns the transaction.
    Unreadable events are recorded as dead letters and every position moves past them."""
    for projection in projections:
        position = positions[projection.name]
        fresh = batch if not batch or batch[0].seq > position else [
            item for item in batch if item.seq > position
        ]  # fmt: skip
        if fresh:
            await projection.apply(conn, fresh, tables)
            positions[projection.name] = fresh[-1].seq
    if dead:
        await record_dead_letters(conn, dead)
        end = max(dead[-1].seq, batch[-1].seq if batch else 0)
        for name, seq in positions.items():
            positions[name] = max(seq, end)


async def record_dead_letters(conn: AsyncConnection, dead: Sequence[DeadLetter]) -> None:
    await execute_many(
        conn,
        sql.SQL(
            "INSERT INTO projection_dead_letters (seq, subject, problem, raw)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (seq) DO NOTHING"
        ),
        [(d.seq, d.subject, d.problem.replace("\0", "\ufffd"), d.raw) for d in dead],
    )


async def write_checkpoints(conn: AsyncConnection, positions: dict[str, int]) -> None:
    await conn.execute(
        "UPDATE projection_checkpoints AS c SET last_seq = p.seq, updated_at = now()"
        " FROM unnest(%s::text[], %s::bigint[]) AS p(name, seq)"
        " WHERE c.name = p.name AND p.seq > c.last_seq",
        (list(positions), list(positions.values())),
    )


async def project_once(conn: AsyncConnection, projections: Sequence[Projection],
                       batch: list[Stored], dead: Sequence[DeadLetter] = ()) -> None:  # fmt: skip
    """One batch in one transaction, checkpoints included."""
    async with conn.transaction():
        positions = await checkpoints(conn, [p.name for p in projections], lock=True)
        await apply_batch(conn, projections, batch, Tables(), positions, dead)
        await write_checkpoints(conn, positions)


async def run_projections(
    database_url: str,
    nats_url: NatsTarget,
    stop: asyncio.Event,
    started: asyncio.Event | None = None,
    names: Sequence[str] = tuple(PROJECTIONS),
    rules: Rules | None = None,
) -> None:
    registry = build_projections(rules)
    projections = [registry[n] for n in names]
    nc = await connect(nats_url, name="jetpost-projections")
    try:
        while not stop.is_set():
            try:
                await _follow(database_url, nc, projections, stop, started)
            except (psycopg.OperationalError, nats.errors.Error) as exc:
                log.warning("projections paused, retrying: %r", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
    finally:
        await nc.close()


async def _follow(database_url: str, nc: Client,
                  projections: Sequence[Projection], stop: asyncio.Event,
                  started: asyncio.Event | None) -> None:  # fmt: skip
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        async with conn.transaction():
            start = min((await checkpoints(conn, [p.name for p in projections])).values())
        reader = EventReader(nc, start + 1)
        await reader.start()
        if started is not None:
            started.set()
        try:
            while not stop.is_set():
                batch = await reader.next_batch(timeout=0.5)
                if batch or reader.dead:
                    await project_once(conn, projections, batch, reader.dead)
        finally:
            await reader.stop()
