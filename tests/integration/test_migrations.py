"""Migrations apply in order, once, also when two processes race to apply them."""

from __future__ import annotations

import asyncio

import psycopg

from shared.migrate import migrate
from shared.paths import MIGRATIONS_DIR


async def test_migrations_are_applied_once_even_concurrently(database_url: str) -> None:
    # the fixture migrated already; two more runs at once find nothing to do
    again = await asyncio.gather(migrate(database_url, MIGRATIONS_DIR),
                                 migrate(database_url, MIGRATIONS_DIR))  # fmt: skip
    assert list(again) == [[], []]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT name FROM schema_migrations ORDER BY version")
        names = [row[0] for row in await cur.fetchall()]
    assert names == sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
    assert "0002_read_models.sql" in names
