"""Appends and direct gets through shared/inflight.py (one reply subscription per
connection, a deadline sweeper) against a real nats-server: many in flight at once,
the same errors as nats-py's own request path (conflict, refusal, timeout, no
responders, not found)."""

from __future__ import annotations

import asyncio
import time
import uuid

import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from shared import inflight
from shared.eventlog import AppendConflict, AppendRefused, append, has_event, last_event
from shared.events import Cancelled, Event, event_id_for
from shared.nats_setup import apply_definitions, load_definitions
from shared.settings import Settings
from shared.subjects import EVT_STREAM, message_filter
from shared.suppression_set import kv_key


@pytest.fixture(autouse=True)
def enabled(js: JetStreamContext) -> None:
    inflight.enable(js)


def requests(js: JetStreamContext) -> inflight.Requests:
    found = inflight.requests_of(js)
    assert found is not None
    return found


def cancelled(message_id: str, reason: str = "") -> Event:
    return Cancelled(event_id=event_id_for(message_id, "cancelled"), message_id=message_id,
                     reason=reason)  # fmt: skip


async def test_many_appends_in_flight_each_get_their_own_ack(js: JetStreamContext) -> None:
    ids = [uuid.uuid4().hex for _ in range(300)]
    acks = await asyncio.gather(*(append(js, cancelled(mid)) for mid in ids))
    assert len({ack.seq for ack in acks}) == 300 and not any(ack.duplicate for ack in acks)
    again = await append(js, cancelled(ids[0]))  # the same Nats-Msg-Id: deduplicated
    assert again.duplicate and again.seq == acks[0].seq
    found = await asyncio.gather(*(last_event(js, mid, "cancelled") for mid in ids[:20]))
    assert [e.message_id if e else None for e in found] == ids[:20]
    assert not await has_event(js, ids[0], "delivered")


async def test_errors_are_the_ones_callers_handle(js: JetStreamContext, nc: Client) -> None:
    mid = uuid.uuid4().hex
    first = await append(js, cancelled(mid))
    with pytest.raises(AppendConflict):
        await append(js, cancelled(mid), n=2, expect_last=first.seq - 1)
    with pytest.raises(AppendRefused):
        await append(js, cancelled(mid, "x" * (nc.max_payload + 1)), n=3)
    stored = await inflight.direct_last(js, EVT_STREAM, message_filter(mid))
    assert stored.seq == first.seq
    with pytest.raises(nats.errors.NoRespondersError):
        await requests(js).request("nobody.listens.here", b"", 5.0)


async def test_an_unanswered_request_times_out_by_its_deadline(
    js: JetStreamContext, nc: Client
) -> None:
    async def ignore(_msg: Msg) -> None:
        pass

    await nc.subscribe("silent.responder", cb=ignore)
    through = requests(js)
    started = time.monotonic()
    with pytest.raises(nats.errors.TimeoutError):
        await through.request("silent.responder", b"", 0.3)
    assert 0.3 <= time.monotonic() - started < 0.3 + 2 * inflight.SWEEP + 1.0
    assert not through.pending


async def test_suppression_lookups_are_direct_gets(
    js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suppressions bucket allows direct gets, so intake's lookups take the one
    reply subscription instead of nats-py's STREAM.MSG.GET request per key."""
    kv = await js.key_value("mail_suppressions")
    assert kv._direct
    await kv.put(kv_key("a@example.com"), b'{"x": 1}')
    await kv.put(kv_key("gone@example.com"), b"{}")
    await kv.delete(kv_key("gone@example.com"))

    async def refused(*_: object, **__: object) -> None:
        raise AssertionError("kv.get: not the direct path")

    monkeypatch.setattr(KeyValue, "get", refused)
    assert await inflight.kv_value(kv, kv_key("a@example.com")) == b'{"x": 1}'
    assert await inflight.kv_value(kv, kv_key("gone@example.com")) is None
    assert await inflight.kv_value(kv, kv_key("never@example.com")) is None


async def test_a_suppressions_bucket_made_without_direct_gets_gets_them_at_start_up(
    js: JetStreamContext, settings: Settings
) -> None:
    await js.delete_key_value("mail_suppressions")
    await js.create_key_value(KeyValueConfig(bucket="mail_suppressions", history=5))
    assert not (await js.key_value("mail_suppressions"))._direct
    await apply_definitions(js, load_definitions(settings))
    assert (await js.key_value("mail_suppressions"))._direct
