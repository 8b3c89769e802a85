"""While a handler works on a message, in-progress acks keep it from redelivery;
when the handler is done (or past MAX_WORK) they stop."""

from __future__ import annotations

import asyncio

from shared.consumers import Heartbeat


class Raw:
    subject = "mail.evt.m1.rendered"

    def __init__(self) -> None:
        self.beats = 0

    async def in_progress(self) -> None:
        self.beats += 1


async def test_beats_while_working_and_stops_after() -> None:
    heartbeat = Heartbeat("sender", interval=0.02)
    raw, quick = Raw(), Raw()
    heartbeat.hold(quick)
    heartbeat.release(quick)
    heartbeat.hold(raw)
    try:
        await asyncio.sleep(0.15)
    finally:
        heartbeat.release(raw)
    beats = raw.beats
    assert beats >= 3 and quick.beats == 0
    await asyncio.sleep(0.1)
    assert raw.beats == beats and not heartbeat.held
    assert heartbeat._task is not None and heartbeat._task.done()


async def test_a_handler_that_never_ends_is_let_go() -> None:
    heartbeat = Heartbeat("sender", interval=0.02, max_work=0.05)
    raw = Raw()
    heartbeat.hold(raw)
    try:
        await asyncio.sleep(0.2)
        assert not heartbeat.held  # no longer kept: JetStream redelivers it
    finally:
        heartbeat.release(raw)
    assert 1 <= raw.beats <= 3
