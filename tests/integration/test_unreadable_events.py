"""One unreadable event in MAIL_EVT (issue 14 item 1: a 549-byte command whose event
pydantic's parser could not read stopped the read models for good) is recorded as a
dead letter and passed over: the projections go on, replay finishes, and `as_of`
answers instead of a 500. Any NATS publisher can append such an event."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from nats.aio.client import Client
from nats.js import JetStreamContext

from projections.replay import replay
from projections.runner import PROJECTIONS
from shared.subjects import EVT_STREAM
from tests.conftest import Projector
from tests.eventlog_reader import wait_for_event
from tests.integration.test_api import welcome
from tests.integration.test_api_support import (  # noqa: F401
    Api,
    api_fixture,
)


def poison_event(message_id: str) -> bytes:
    """An `accepted` event whose vars nest 5,000 levels: past pydantic's JSON parser
    (it stops at 200) and Python's own (its recursion limit). Intake refuses such
    vars now (shared/limits.py), but any NATS publisher can append such an event."""
    head = json.dumps({
        "type": "accepted", "v": 1, "event_id": "e-poison", "message_id": message_id,
        "occurred_at": "2026-01-01T00:00:00Z",
        "envelope": {"sender": {"email": "a@example.com"}, "to": [{"email": "b@example.com"}]},
        "template": "welcome",
    })[:-1]  # fmt: skip
    return f'{head}, "vars": {{"deep": {"[" * 5000}"x"{"]" * 5000}}}}}'.encode()


async def dead_letters(database_url: str) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT seq, subject, problem FROM projection_dead_letters")
        return await cur.fetchall()


async def test_an_unreadable_event_is_a_dead_letter_and_nothing_stops(
    api: Api, js: JetStreamContext, nc: Client, database_url: str, projector: Projector
) -> None:
    ack = await js.publish("mail.evt.poison1.accepted", poison_event("poison1"), stream=EVT_STREAM)
    sent = await api.client.post("/v1/messages", json=welcome(), headers=await api.as_("send"))
    message_id = sent.json()["id"]
    await wait_for_event(js, message_id, "delivered")
    await projector.caught_up(js)  # the checkpoints pass the poison event
    (seq, subject, problem), *more = await dead_letters(database_url)
    assert not more and seq == ack.seq and subject == "mail.evt.poison1.accepted"
    assert "nests too deeply" in problem
    reader = await api.as_("read")
    row = await api.client.get(f"/v1/messages/{message_id}", headers=reader)
    assert row.json()["status"] == "delivered"
    # `as_of` over the poisoned message: the unreadable event is left out (the
    # renderer recorded render_failed for it), no 500
    await wait_for_event(js, "poison1", "render_failed")
    as_of = await api.client.get(
        "/v1/messages/poison1", params={"as_of": "2030-01-01T00:00:00Z"}, headers=reader
    )
    assert as_of.status_code == 200 and as_of.json()["status"] == "render_failed", as_of.text
    # replay passes over it too and rebuilds the same rows
    result = await replay(database_url, nc, list(PROJECTIONS.values()))
    assert result.last_seq >= ack.seq
    assert len(await dead_letters(database_url)) == 1
    row = await api.client.get(f"/v1/messages/{message_id}", headers=reader)
    assert row.json()["status"] == "delivered"
