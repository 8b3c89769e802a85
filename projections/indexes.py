"""The replay copies' secondary indexes: left out while the bulk goes in, built after.

A copy is loaded with only its unique indexes (the upserts need them). Every other
index is built once the rows are in: one sort per index instead of an index insert per
row (GIN ones above all). The builds are independent of each other, so they run on
several connections at once, one per CPU, the largest table's first: on 2 CPUs the
eight indexes of a 200,000-event replay took 0.42-0.58 s one after the other, a tenth
of the whole replay, with one CPU idle, and 0.30-0.40 s on two (bench.replay).

A copy made with `LIKE ... INCLUDING ALL` names its indexes after its columns, not as
the migrations named the originals (`messages_created_idx`): at the swap, each gets the
name of the live index it stands for (`live_names`), so a later migration can still
refer to it by name.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import AsyncConnection, sql


@dataclass(frozen=True, slots=True)
class Deferred:
    """An index left out of `table` (a replay copy) until its rows are in."""

    table: str
    definition: str  # as pg_get_indexdef gives it


async def defer(conn: AsyncConnection, table: str) -> list[Deferred]:
    """Drop the indexes of `table` that are not unique; returns how to build them."""
    cur = await conn.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = %s::regclass AND NOT i.indisunique ORDER BY c.relname",
        (table,),
    )
    deferred = []
    for name, definition in await cur.fetchall():
        await conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        deferred.append(Deferred(table, definition))
    return deferred


def _shape(definition: str) -> str:
    """What an index indexes, and how, whatever its name and table: its definition from
    USING on (method, keys, predicate), and whether it is unique."""
    unique = definition.startswith("CREATE UNIQUE INDEX ")
    return ("UNIQUE " if unique else "") + definition.partition(" USING ")[2]


def live_names(
    live: dict[str, str], copy: dict[str, str], table: str, copy_table: str
) -> list[tuple[str, str]]:
    """(copy's index, the name it takes) for the indexes of `copy_table` (`copy`: name ->
    definition), a copy of `table` whose indexes are `live`: the name of the live index
    of the same shape; else the copy's name with `copy_table` in it made `table`."""
    names: dict[str, list[str]] = {}
    for name, definition in sorted(live.items()):
        names.setdefault(_shape(definition), []).append(name)
    renames = []
    for name, definition in sorted(copy.items()):
        same = names.get(_shape(definition))
        renames.append((name, same.pop(0) if same else name.replace(copy_table, table, 1)))
    return renames


async def _definitions(conn: AsyncConnection, table: str) -> dict[str, str]:
    """The indexes of `table`: name -> definition."""
    cur = await conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        " AND tablename = %s",
        (table,),
    )
    return dict(await cur.fetchall())


async def renames(conn: AsyncConnection, table: str, copy_table: str) -> list[tuple[str, str]]:
    """`live_names` for the indexes of `copy_table`, a copy of `table`, as they are now."""
    live = await _definitions(conn, table)
    return live_names(live, await _definitions(conn, copy_table), table, copy_table)


def largest_first(deferred: Sequence[Deferred], sizes: dict[str, int]) -> list[Deferred]:
    """The builds in the order they are handed out: the largest table's first, so that
    no connection starts a long build when the others are about to run out of work."""
    return sorted(deferred, key=lambda d: -sizes.get(d.table, 0))


async def build(
    database_url: str, deferred: Sequence[Deferred], connections: int | None = None
) -> None:
    """Build `deferred` on `connections` connections at once (default: one per CPU),
    each taking the next build when its last is done. Each build commits on its own:
    the tables are replay copies that no reader sees. The first failure cancels the
    other builds and is raised."""
    if not deferred:
        return
    count = max(1, min(len(deferred), connections or os.cpu_count() or 1))
    conns = [await AsyncConnection.connect(database_url, autocommit=True) for _ in range(count)]
    try:
        cur = await conns[0].execute(
            "SELECT t, pg_total_relation_size(t::regclass) FROM unnest(%s::text[]) t",
            (sorted({d.table for d in deferred}),),
        )
        todo = iter(largest_first(deferred, dict(await cur.fetchall())))

        async def work(conn: AsyncConnection) -> None:
            for index in todo:  # shared: each connection takes the next one left
                await conn.execute(index.definition.encode())

        async with asyncio.TaskGroup() as tasks:
            for conn in conns:
                tasks.create_task(work(conn))
    except BaseExceptionGroup as failed:  # the first failure, as one connection gives it
        raise failed.exceptions[0] from None
    finally:
        for conn in conns:
            await conn.close()
