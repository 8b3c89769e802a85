"""Publish acks through shared/inflight.py (`acked`, the API's publish path and the
pipeline's appends) answer as nats-py's `js.publish` would, against a real
nats-server: the stream sequence, a duplicate `Nats-Msg-Id` acked with the first
sequence, and every failure a `nats.errors.Error` (the API's 503): no stream for the
subject, the wrong expected stream, no ack in time."""

from __future__ import annotations

import asyncio

import nats.errors
import pytest
from nats.aio.client import Client
from nats.js.errors import APIError, NoStreamResponseError

from shared.inflight import Requests, acked


async def test_acks_give_the_sequence_and_every_failure_as_a_nats_error(nc: Client) -> None:
    js = nc.jetstream()
    await js.add_stream(name="ACKS", subjects=["acks.>"])
    requests = Requests(nc)

    async def publish(subject: str, data: bytes, headers: dict[str, str], timeout: float = 5,
                      stream: str = "ACKS") -> int:  # fmt: skip
        return int((await acked(requests, subject, data, stream, headers, timeout)).seq)

    seqs = await asyncio.gather(*(publish("acks.a", b"%d" % i, {"Nats-Msg-Id": f"c{i}"})
                                  for i in range(20)))  # fmt: skip
    assert sorted(seqs) == list(range(1, 21))  # concurrent acks reach their own callers
    assert await publish("acks.a", b"x", {"Nats-Msg-Id": "m1"}) == 21
    again = await acked(requests, "acks.a", b"x", "ACKS", {"Nats-Msg-Id": "m1"}, 5)
    assert again.seq == 21 and again.duplicate  # a duplicate: the first one's sequence
    with pytest.raises(NoStreamResponseError):
        await publish("nowhere.a", b"x", {"Nats-Msg-Id": "m2"})
    with pytest.raises(APIError):
        await publish("acks.a", b"x", {}, stream="OTHER")  # the wrong expected stream
    await nc.subscribe("silent.a")  # a plain subscriber: no ack ever comes back
    with pytest.raises(nats.errors.TimeoutError):
        await publish("silent.a", b"x", {}, 0.2)
    for error in (NoStreamResponseError, APIError, nats.errors.TimeoutError):
        assert issubclass(error, nats.errors.Error)  # the API's TRANSIENT_ERRORS: a 503
    assert not requests.pending  # nothing left behind
