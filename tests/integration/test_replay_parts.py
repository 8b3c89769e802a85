"""A replay built in parts (one process per part, by message; the suppression set in
the calling process from only the event types it reads) equals the live read models
row for row, dead letters included."""

from __future__ import annotations

import psycopg
from nats.aio.client import Client
from nats.js import JetStreamContext

from bench.replay import history
from projections.replay import replay
from projections.runner import PROJECTIONS
from shared.eventlog import append
from shared.events import Bounced, SuppressionAdded, event_id_for
from shared.subjects import EVT_STREAM
from tests.conftest import Projector
from tests.integration.test_projections import snapshot
from tests.integration.test_unreadable_events import dead_letters, poison_event


async def test_a_replay_in_parts_equals_the_live_read_models(
    projector: Projector, js: JetStreamContext, nc: Client, database_url: str
) -> None:
    for i in range(12):
        for event, n in history(i):
            await append(js, event, n)
    poison = await js.publish("mail.evt.poison1.accepted", poison_event("poison1"),
                              stream=EVT_STREAM)  # fmt: skip
    await append(js, Bounced(event_id=event_id_for("bench00000003", "bounced"), kind="hard",
                             message_id="bench00000003", smtp_code=550, status="5.1.1",
                             response="550 5.1.1 unknown user",
                             recipients=("user3@example.com",)))  # fmt: skip
    await append(js, SuppressionAdded(event_id="e-manual", message_id="sup-1",
                                      address="manual@example.com", reason="asked"))  # fmt: skip
    for event, n in history(12):  # the last events are of one part only
        await append(js, event, n)
    await projector.caught_up(js)
    live = await snapshot(database_url)
    assert any(row[0] == "user3@example.com" for row in live["suppressions"])

    result = await replay(database_url, nc, list(PROJECTIONS.values()),
                          nats=projector.nats_url, parts=2)  # fmt: skip
    assert result.parts == 2
    assert result.last_seq == (await js.stream_info(EVT_STREAM)).state.last_seq
    assert await snapshot(database_url) == live
    assert [seq for seq, _, _ in await dead_letters(database_url)] == [poison.seq]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM message_events")
        assert (await cur.fetchone()) == (len(live["message_events"]),)
