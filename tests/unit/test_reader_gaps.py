"""The projection reader never hands out events past a missing delivery."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from projections.reader import EventReader
from shared.events import Opened


def delivery(consumer: str, stream_seq: int, consumer_seq: int) -> tuple[bytes, bytes, bytes]:
    """A delivery as the reader's raw inbox handler takes it: subject, reply, data."""
    event = Opened(event_id=f"e{stream_seq}", message_id="m1")
    reply = f"$JS.ACK.MAIL_EVT.{consumer}.1.{stream_seq}.{consumer_seq}.1700000000000000000.0"
    return b"mail.evt.m1.opened", reply.encode(), event.model_dump_json().encode()


def reader() -> EventReader:
    fake_nc: Any = SimpleNamespace(jetstream=lambda: None)
    r = EventReader(fake_nc, 1)
    r._consumer, r._consumer_id = "c1", b"c1"
    return r


async def test_a_hole_in_deliveries_stops_the_batch_at_the_hole() -> None:
    r = reader()
    for stream_seq, consumer_seq in ((1, 1), (2, 2), (4, 4), (5, 5)):  # delivery 3 was lost
        r._on_delivery(*delivery("c1", stream_seq, consumer_seq), None)
    assert [s.seq for s in r._buffer] == [1, 2]
    assert r._gap  # the next pull recreates the consumer after sequence 2


async def test_deliveries_of_a_replaced_consumer_are_ignored() -> None:
    r = reader()
    r._on_delivery(*delivery("old", 1, 1), None)
    r._on_delivery(*delivery("c1", 1, 1), None)
    assert [s.seq for s in r._buffer] == [1] and not r._gap
