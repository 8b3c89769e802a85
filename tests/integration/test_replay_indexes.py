"""Replay loads its table copies without their secondary indexes and builds those after
(projections.indexes), on several connections at once: the swapped-in tables must
have every index the migrations gave them, under the same names (and migration 0013
gives a database an older replay renamed its names back); a build that fails fails
the replay and stops the other builds."""

from __future__ import annotations

import psycopg
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from projections import indexes
from projections.indexes import Deferred, largest_first, live_names
from projections.replay import SUFFIX, replay
from projections.runner import PROJECTIONS
from shared.eventlog import append
from shared.events import Accepted, Delivered, Envelope, event_id_for
from shared.mailbox import Mailbox
from shared.paths import MIGRATIONS_DIR

TABLES = sorted(t for p in PROJECTIONS.values() for t in p.tables)


async def index_definitions(database_url: str) -> dict[str, str]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = 'public' AND tablename = ANY(%s)",
            (TABLES,),
        )
        return dict(await cur.fetchall())


async def test_replayed_tables_have_every_index_they_had(
    js: JetStreamContext, nc: Client, database_url: str
) -> None:
    for i in range(12):
        mid = f"idx{i:02d}"
        envelope = Envelope(sender=Mailbox(email="a@example.com"),
                            to=(Mailbox(email=f"u{i}@example.com"),))  # fmt: skip
        await append(js, Accepted(event_id=event_id_for(mid, "accepted"), message_id=mid,
                                  envelope=envelope, template="welcome", tags=("t",)))  # fmt: skip
        await append(js, Delivered(event_id=event_id_for(mid, "delivered"), message_id=mid,
                                   attempt=1, provider="smtp", smtp_code=250))  # fmt: skip
    before = await index_definitions(database_url)
    # the migrations give the read models secondary indexes, GIN ones among them
    assert sum(" USING gin " in d for d in before.values()) >= 3
    assert sum("UNIQUE" not in d for d in before.values()) >= 6

    result = await replay(database_url, nc, list(PROJECTIONS.values()), max_batch=5)
    assert result.events == 24
    assert await index_definitions(database_url) == before
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE %s",
                                 (f"%{SUFFIX}%",))  # fmt: skip
        assert await cur.fetchone() == (0,)
        # the planner uses them, under the migration's name: the GIN index on recipients
        await conn.execute("SET enable_seqscan = off")
        cur = await conn.execute("EXPLAIN SELECT id FROM messages WHERE to_addrs @> %s",
                                 (["u3@example.com"],))  # fmt: skip
        assert "messages_to_idx" in str(await cur.fetchall())


async def test_a_failing_build_fails_and_stops_the_others(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE big (n int, t text)")
        await conn.execute(
            "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 20000) g"
        )
        await conn.execute("CREATE TABLE small (n int)")
    deferred = [
        Deferred("small", "CREATE INDEX small_n ON public.small USING btree (n)"),
        Deferred("big", "CREATE INDEX big_broken ON public.big USING btree (missing)"),
        Deferred("big", "CREATE INDEX big_t ON public.big USING btree (t)"),
        Deferred("big", "CREATE INDEX big_n ON public.big USING btree (n)"),
    ]
    with pytest.raises(psycopg.errors.UndefinedColumn):
        await indexes.build(database_url, deferred, connections=1)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'small'")
        # the largest table's builds go first, and the failure ended the run
        assert await cur.fetchall() == []

    # on two connections, every build that can succeed gets done
    await indexes.build(database_url, [d for d in deferred if "broken" not in d.definition], 2)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename IN ('big', 'small') ORDER BY 1"
        )
        assert await cur.fetchall() == [("big_n",), ("big_t",), ("small_n",)]


def test_largest_table_first() -> None:
    deferred = [Deferred("a", "1"), Deferred("b", "2"), Deferred("c", "3"), Deferred("b", "4")]
    order = largest_first(deferred, {"a": 10, "b": 300, "c": 20})
    assert [d.definition for d in order] == ["2", "4", "3", "1"]


async def test_migration_0013_gives_an_older_replays_names_back(database_url: str) -> None:
    before = await index_definitions(database_url)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        # what an older replay left: each index under the name Postgres gave it in the
        # table's copy, with the copy's table name made the live one's
        for table in TABLES:
            copy = table + SUFFIX
            await conn.execute(f"CREATE TABLE {copy} (LIKE {table} INCLUDING ALL)")
            cur = await conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", (copy,)
            )
            copies: dict[str, str] = dict(await cur.fetchall())
            live = {n: d for n, d in before.items() if f" ON public.{table} " in d}
            await conn.execute(f"DROP TABLE {copy}")
            for name, kept in live_names(live, copies, table, copy):
                old = name.replace(copy, table, 1)
                if old != kept:
                    await conn.execute(f"ALTER INDEX {kept} RENAME TO {old}")
        renamed = await index_definitions(database_url)
        assert "messages_created_at_id_idx" in renamed
        assert len(set(renamed) - set(before)) == 7
        await conn.execute((MIGRATIONS_DIR / "0013_index_names.sql").read_bytes())
    assert await index_definitions(database_url) == before


def test_live_names() -> None:
    live = {
        "t_pkey": "CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)",
        "t_by_a": "CREATE INDEX t_by_a ON public.t USING btree (a)",
        "t_by_a_too": "CREATE INDEX t_by_a_too ON public.t USING btree (a)",
        "t_a_uniq": "CREATE UNIQUE INDEX t_a_uniq ON public.t USING btree (a)",
        "t_recent": "CREATE INDEX t_recent ON public.t USING btree (a) WHERE (b > 0)",
    }
    copy = {
        "t__c_pkey": "CREATE UNIQUE INDEX t__c_pkey ON public.t__c USING btree (id)",
        "t__c_a_idx": "CREATE INDEX t__c_a_idx ON public.t__c USING btree (a)",
        "t__c_a_idx1": "CREATE INDEX t__c_a_idx1 ON public.t__c USING btree (a)",
        "t__c_a_key": "CREATE UNIQUE INDEX t__c_a_key ON public.t__c USING btree (a)",
        "t__c_a_idx2": "CREATE INDEX t__c_a_idx2 ON public.t__c USING btree (a) WHERE (b > 0)",
        "t__c_b_idx": "CREATE INDEX t__c_b_idx ON public.t__c USING gin (b)",  # not in live
    }
    assert dict(live_names(live, copy, "t", "t__c")) == {
        "t__c_pkey": "t_pkey", "t__c_a_idx": "t_by_a", "t__c_a_idx1": "t_by_a_too",
        "t__c_a_key": "t_a_uniq", "t__c_a_idx2": "t_recent", "t__c_b_idx": "t_b_idx",
    }  # fmt: skip
