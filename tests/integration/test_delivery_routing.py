"""The sender's failover and circuit breakers through the running services, against
aiosmtpd relays that refuse connections, answer 421, hang or drop during DATA.
Every test counts mails: none lost, none sent twice."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.js import JetStreamContext

from services.capture import CaptureSink
from shared.settings import Settings
from tests.conftest import Pipeline
from tests.delivery_flow import copies, ops_subjects, send_many, wait_for_ops, wait_settled
from tests.delivery_peers import AnsweringSink, HangingServer, refusing_port
from tests.eventlog_reader import history

pytestmark = pytest.mark.slow


@pytest.fixture
async def services(settings: Settings, js: JetStreamContext) -> AsyncIterator[Pipeline]:
    running = Pipeline(settings)
    yield running
    await running.stop()


async def test_failover_past_refusing_421_and_hanging_relays(
    services: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    busy = AnsweringSink("421 4.3.2 service not available")
    hanging = HangingServer()
    await busy.start()
    await hanging.start()
    try:
        providers = (
            f"smtp://127.0.0.1:{refusing_port()}#down,smtp://127.0.0.1:{busy.port}#busy,"
            f"smtp://127.0.0.1:{hanging.port}#hung,smtp://127.0.0.1:{sink.port}#good"
        )
        await services.start(providers=providers, circuit_failures=2, circuit_cooldown=600,
                             smtp_timeout=1.0)  # fmt: skip
        ids = await send_many(js, [f"user{i}@example.com" for i in range(30)])
        settled = await wait_settled(js, ids)
    finally:
        await busy.stop()
        await hanging.stop()
    assert all(kinds == ["delivered"] for kinds in settled.values())
    got = copies(sink.received)
    assert len(got) == 30 and set(got.values()) == {1}  # none lost, none twice
    assert busy.received == []  # 421 took nothing
    subjects = await ops_subjects(js)
    for name in ("down", "busy", "hung"):
        assert f"mail.ops.provider.{name}.open" in subjects
    events = await history(js, ids[-1])
    delivered = events[-1]
    assert (delivered.type, getattr(delivered, "provider", None)) == ("delivered", "good")
    assert getattr(delivered, "host", None) == "127.0.0.1"


async def test_all_circuits_open_defers_and_never_fails_then_recovers(
    services: Pipeline, js: JetStreamContext, tmp_path: object
) -> None:
    port = refusing_port()
    await services.start(providers=f"smtp://127.0.0.1:{port}#only", circuit_failures=1,
                         circuit_cooldown=0.5, max_attempts=20)  # fmt: skip
    ids = await send_many(js, [f"user{i}@example.com" for i in range(10)])
    await wait_for_ops(js, "mail.ops.provider.only.open", count=2)  # a probe failed too
    late = CaptureSink(None, port=port)
    await late.start()
    try:
        settled = await wait_settled(js, ids)
        got = copies(await late.wait_for(10, timeout=10))
    finally:
        await late.stop()
    assert all(kinds == ["delivered"] for kinds in settled.values())
    assert len(got) == 10 and set(got.values()) == {1}
    subjects = await ops_subjects(js)
    assert "mail.ops.provider.only.half_open" in subjects
    assert subjects[-1] == "mail.ops.provider.only.closed"


async def test_a_recipient_refusal_does_not_fail_over(
    services: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    refusing = AnsweringSink("550 5.1.1 no such user")
    await refusing.start()
    try:
        providers = f"smtp://127.0.0.1:{refusing.port}#first,smtp://127.0.0.1:{sink.port}#second"
        await services.start(providers=providers, circuit_failures=1)
        ids = await send_many(js, ["nobody@example.com"])
        settled = await wait_settled(js, ids)
    finally:
        await refusing.stop()
    assert settled[ids[0]] == ["bounced"]
    assert sink.received == [] and refusing.attempts == 1
    assert await ops_subjects(js) == []  # the circuit never moved
