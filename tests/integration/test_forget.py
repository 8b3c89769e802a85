"""Forgetting an address through DELETE /v1/recipients/{address}: nothing of it stays
in the log, the commands, the read models or the captured mail, and a replay brings
nothing back (real NATS, services, SMTP sink, Postgres)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from projections.replay import replay
from projections.runner import PROJECTIONS
from services.api.server import ApiServer
from services.capture import CaptureSink
from services.cli.main import main
from shared.erasure import scan
from shared.settings import Settings
from shared.subjects import CMD_SEND, CMD_STREAM, CMD_SUPPRESS, EVT_STREAM, SUPPRESSION_BUCKET
from shared.suppression_set import kv_key
from tests.conftest import Pipeline, Projector
from tests.eventlog_reader import read_all, wait_for_event
from tests.integration.test_api_support import Api, assert_problem, start_api

BOB = b"bob@example.com"


@pytest.fixture
async def api_here(
    pipeline: Pipeline, settings: Settings, database_url: str, sink: CaptureSink
) -> AsyncIterator[Api]:
    """The API with the sink's folder as its capture folder (the `jetpost dev` layout)."""
    assert sink.folder is not None
    server: ApiServer
    server, api = await start_api(settings.model_copy(update={"data_dir": sink.folder.parent}),
                                  database_url)  # fmt: skip
    yield api
    await api.client.aclose()
    await server.stop()


async def mentioning(js: JetStreamContext, stream: str, subjects: str) -> list[str]:
    return [subject async for _, subject, data in scan(js, stream, subjects)
            if BOB in data.lower()]  # fmt: skip


async def read_model_mentions(database_url: str) -> list[int]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        counts = []
        for table in ("messages", "message_events", "suppressions"):
            cur = await conn.execute(
                f"SELECT count(*) FROM {table} t WHERE t::text ILIKE '%%bob@example.com%%'"  # noqa: S608
            )
            row = await cur.fetchone()
            counts.append(int(row[0]) if row else -1)
        return counts


async def test_forget_erases_an_address_and_a_replay_brings_nothing_back(
    api_here: Api, projector: Projector, js: JetStreamContext, nc: Client,
    sink: CaptureSink, database_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    api = api_here
    ids = {name: uuid.uuid4().hex for name in ("bob1", "bob2", "alice")}
    commands = [
        {"to": "Bob <bob@example.com>", "subject": "One", "text": "x", "message_id": ids["bob1"]},
        {"to": "alice@example.com", "cc": ["BOB@example.com"], "subject": "Two", "text": "y",
         "message_id": ids["bob2"]},
        {"to": "alice@example.com", "subject": "Three", "text": "z", "message_id": ids["alice"]},
    ]  # fmt: skip
    for command in commands:
        await js.publish(CMD_SEND, json.dumps(command).encode(), stream=CMD_STREAM)
    suppress = {"address": "bob@example.com", "scope": "news", "reason": "asked"}
    await js.publish(CMD_SUPPRESS, json.dumps(suppress).encode(), stream=CMD_STREAM)
    for mid in ids.values():
        await wait_for_event(js, mid, "delivered")
    await sink.wait_for(3, timeout=10)
    kv = await js.key_value(SUPPRESSION_BUCKET)
    await projector.caught_up(js)
    assert await read_model_mentions(database_url) != [0, 0, 0]

    admin = await api.as_("admin")
    url = "/v1/recipients/bob@example.com"
    assert_problem(await api.client.delete(url, headers=await api.as_("read", "send")), 403)
    assert_problem(await api.client.delete("/v1/recipients/not-an-address", headers=admin), 400)
    response = await api.client.delete(url, params={"keep_suppression": "true"}, headers=admin)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["messages"] >= 3  # two messages and the suppression entry's aggregate
    assert result["commands"] == 3 and result["suppression_kept"] is True
    assert result["files"] == 2 and result["rows"] > 0

    assert await mentioning(js, EVT_STREAM, "mail.evt.>") == []
    assert await mentioning(js, CMD_STREAM, "mail.cmd.>") == []
    assert [e.type for e in await read_all(js, f"mail.evt.{ids['alice']}.*")][-1] == "delivered"
    (forgotten,) = await read_all(js, "mail.evt.*.forgotten")
    assert b"bob" not in forgotten.model_dump_json().encode().lower()
    assert await read_model_mentions(database_url) == [0, 0, 0]
    assert sink.folder is not None
    assert [BOB in p.read_bytes().lower() for p in sink.folder.iterdir()] == [
        False,
        False,
    ]  # alice: .eml + envelope
    # only the hashed global entry is left: still never mailed, nothing readable kept
    assert sorted(await kv.keys()) == [kv_key("bob@example.com")]
    entry = await kv.get(kv_key("bob@example.com"))
    assert entry.value is not None and BOB not in entry.value.lower()

    await replay(database_url, nc, list(PROJECTIONS.values()))
    assert await read_model_mentions(database_url) == [0, 0, 0]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT id, status FROM messages WHERE NOT id LIKE 'sup-%%'")
        assert await cur.fetchall() == [(ids["alice"], "delivered")]

    # `jetpost forget` does the same from the command line
    monkeypatch.setenv("JETPOST_NATS_URL", api.settings.nats_address)
    monkeypatch.setenv("JETPOST_DATABASE_URL", database_url)
    monkeypatch.setenv("JETPOST_DATA_DIR", str(sink.folder.parent))
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["forget", "Alice@Example.com"]) == 0
    assert "forgot alice@example.com: 1 message(s)" in capsys.readouterr().err
    assert list(sink.folder.iterdir()) == []
    assert await read_all(js, f"mail.evt.{ids['alice']}.*") == []
