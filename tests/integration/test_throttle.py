"""Per-domain throttles held in NATS KV: two Throttle objects (as two sender copies
would hold) share concurrency and rate; "slow down" lowers a rate and it recovers;
and through the services with two sender copies, a throttled domain neither exceeds
its rate nor slows the other domains. Mails are counted: none lost, none twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from services.capture import CaptureSink
from services.sender.throttle import THROTTLE_BUCKET, Lease, Throttle
from services.sender.throttle_rules import Limit
from shared.settings import Settings
from tests.conftest import Pipeline
from tests.delivery_flow import copies, ops_subjects, send_many, wait_settled
from tests.eventlog_reader import read_all

LIMITS = {"slow.example": Limit(concurrency=2, count=5, period=1.0), "open.test": Limit()}


async def two_copies(js: JetStreamContext, slow_for: float = 60.0) -> tuple[Throttle, Throttle]:
    kv = await js.key_value(THROTTLE_BUCKET)
    return Throttle(kv, LIMITS, slow_for=slow_for), Throttle(kv, LIMITS, slow_for=slow_for)


async def test_concurrency_is_shared_by_two_copies(js: JetStreamContext) -> None:
    a, b = await two_copies(js)
    first, second = await a.acquire(["slow.example"]), await b.acquire(["slow.example"])
    assert isinstance(first, Lease) and isinstance(second, Lease)
    assert isinstance(await a.acquire(["slow.example"]), float)  # both slots are held
    assert isinstance(await b.acquire(["open.test", "other.test"]), Lease)  # others are free
    await a.release(first)
    third = await b.acquire(["slow.example"])
    assert isinstance(third, Lease)
    await b.release(second)
    await b.release(third)


async def test_rate_is_shared_by_two_copies(js: JetStreamContext) -> None:
    a, b = await two_copies(js)
    # start early in a wall-clock second, so all tries fall in one window
    await asyncio.sleep(1.02 - time.time() % 1.0)
    granted = 0
    for copy in (a, b, a, b, a, b, a, b):
        lease = await copy.acquire(["slow.example"])
        if isinstance(lease, Lease):
            granted += 1
            await copy.release(lease)
        else:
            assert 0 < lease <= 2.0  # back in the next window, not at once
    assert granted == 5


async def test_slow_down_halves_the_rate_and_recovers(
    js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await two_copies(js, slow_for=0.5)
    assert await a.slow_down("slow.example") == 0.5
    assert await b.slow_down("slow.example") is None  # the same wave of answers
    assert await b.factor("slow.example") == 0.5  # shared through KV
    monkeypatch.setattr("services.sender.throttle.SLOW_DOWN_SETTLE", 0.0)
    assert await b.slow_down("slow.example") == 0.25
    await asyncio.sleep(1.1)  # past slow_for and the copies' one-second cache
    assert await a.factor("slow.example") == 1.0


@pytest.mark.slow
async def test_two_sender_copies_keep_the_rate_and_other_domains_run_free(
    settings: Settings, js: JetStreamContext, sink: CaptureSink, tmp_path: Path
) -> None:
    limits = tmp_path / "throttles.yaml"
    limits.write_text("slow.example: {concurrency: 3, rate: 10/s}\n")
    main, second = Pipeline(settings), Pipeline(settings)
    await main.start(throttles=limits)
    await second.start(("sender",), throttles=limits)
    try:
        slow = await send_many(js, [f"u{i}@slow.example" for i in range(60)], "slow")
        fast = await send_many(js, [f"u{i}@fast.example" for i in range(60)], "fast")
        await wait_settled(js, fast)
        slow_done_when_fast_was = sum(
            1 for m in sink.received if m.rcpt_tos[0].endswith("slow.example")
        )
        settled = await wait_settled(js, slow)
    finally:
        await second.stop()
        await main.stop()
    assert Counter(k for kinds in settled.values() for k in kinds) == {"delivered": 60}
    got = copies(sink.received)
    assert len(got) == 120 and set(got.values()) == {1}
    # The fast domain did not wait for the slow one: it was done while the slow one
    # still had several seconds of mail queued (60 at 10/s; a busy CI slows the fast).
    assert slow_done_when_fast_was < 50, slow_done_when_fast_was
    # The limit holds where slots are taken (a one-second window shared by both
    # copies); an event's timestamp comes a little later, more so on a loaded machine,
    # so count three seconds at a time and let a few cross the edges.
    stamps = [
        e.occurred_at.timestamp()
        for e in await read_all(js, "mail.evt.*.attempted")
        if e.message_id in set(slow)
    ]
    per_second = Counter(int(t) for t in stamps)
    first = min(per_second)
    in_three = [sum(per_second[s + i] for i in range(3)) for s in range(first, max(per_second) + 1)]
    assert max(in_three) <= 30 + 4  # 10/s across BOTH copies (20/s if each kept its own)
    assert max(stamps) - min(stamps) >= 4.0  # 60 mails need six one-second windows


@pytest.mark.slow
async def test_a_slow_down_answer_is_published_and_the_mail_still_goes(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    sink.script(["451 4.7.1 slow down: rate limited"])
    ids = await send_many(js, ["someone@busy.example"])
    settled = await wait_settled(js, ids)
    assert settled[ids[0]] == ["delivered"]
    assert "mail.ops.throttle.busy_example.slowed" in await ops_subjects(js)
    assert len(copies(sink.received)) == 1
