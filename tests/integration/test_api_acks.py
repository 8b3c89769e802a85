"""The API's own publish-ack path (services.api.acks) answers as nats-py's
`js.publish` would, against a real nats-server: the stream sequence, a duplicate
`Nats-Msg-Id` acked with the first sequence, and every failure a `nats.errors.Error`
(the API's 503): no stream for the subject, the wrong expected stream, no ack in time."""

from __future__ import annotations

import asyncio

import nats.errors
import pytest
from nats.aio.client import Client
from nats.js.errors import APIError, NoStreamResponseError

from services.api.acks import Acks


async def test_acks_give_the_sequence_and_every_failure_as_a_nats_error(nc: Client) -> None:
    js = nc.jetstream()
    await js.add_stream(name="ACKS", subjects=["acks.>"])
    acks = Acks(nc)
    await acks.start()
    first = {"Nats-Msg-Id": "m1", "Nats-Expected-Stream": "ACKS"}
    seqs = await asyncio.gather(*(acks.publish("acks.a", b"%d" % i, {"Nats-Msg-Id": f"c{i}"}, 5)
                                  for i in range(20)))  # fmt: skip
    assert sorted(seqs) == list(range(1, 21))  # concurrent acks reach their own callers
    assert await acks.publish("acks.a", b"x", dict(first), 5) == 21
    assert await acks.publish("acks.a", b"x", dict(first), 5) == 21  # a duplicate: same seq
    with pytest.raises(NoStreamResponseError):
        await acks.publish("nowhere.a", b"x", {"Nats-Msg-Id": "m2"}, 5)
    with pytest.raises(APIError):
        await acks.publish("acks.a", b"x", {"Nats-Expected-Stream": "OTHER"}, 5)
    await nc.subscribe("silent.a")  # a plain subscriber: no ack ever comes back
    with pytest.raises(nats.errors.TimeoutError):
        await acks.publish("silent.a", b"x", {}, 0.2)
    for error in (NoStreamResponseError, APIError, nats.errors.TimeoutError):
        assert issubclass(error, nats.errors.Error)  # the API's TRANSIENT_ERRORS: a 503
    assert not acks._waiting  # nothing left behind
