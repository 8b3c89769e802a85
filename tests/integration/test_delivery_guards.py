"""Defects of issue 14 the sender owns, each with the test that failed before:
- item 2: a consumer-state rollback (as after a nats-server crash) redelivers
  delivered mail as first deliveries: the log check before every send stops it;
- item 9: a pooled connection dropped after DATA is not retried in the attempt
  (only a connection gone stale while idle is);
- item 4: IDN domains go out as A-labels, UTF-8 local parts with SMTPUTF8, and a
  server without SMTPUTF8 bounces them with a reason (no UnicodeEncodeError)."""

from __future__ import annotations

import asyncio
import email
import email.policy

from nats.js import JetStreamContext

from services.capture import CaptureSink
from services.sender.outgoing import make_mail
from services.sender.smtp import SmtpMailer
from shared.events import Envelope, Rendered
from shared.mailbox import Mailbox
from shared.settings import Settings, SmtpTarget
from tests.conftest import Pipeline
from tests.delivery_flow import copies, count_events, send_many, wait_settled
from tests.delivery_peers import DroppingSink, NoUtf8Sink
from tests.eventlog_reader import history


async def test_consumer_rollback_does_not_resend_delivered_mail(
    settings: Settings, js: JetStreamContext, sink: CaptureSink
) -> None:
    running = Pipeline(settings)
    await running.start()
    try:
        ids = await send_many(js, [f"user{i}@example.com" for i in range(5)])
        await wait_settled(js, ids)
        await sink.wait_for(5, timeout=10)
        await running.stop()
        # what a crashed nats-server can do: the consumer forgets what it delivered
        await js.delete_consumer("MAIL_EVT", "sender")
        await running.start()  # re-creates the consumer: every rendered event comes again
        async with asyncio.timeout(30):
            while True:
                info = await js.consumer_info("MAIL_EVT", "sender")
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    break
                await asyncio.sleep(0.1)
    finally:
        await running.stop()
    assert len(sink.received) == 5 and set(copies(sink.received).values()) == {1}
    assert await count_events(js, ids, "attempted") == 5


def rendered(to: str, n: int = 0) -> Rendered:
    return Rendered(
        event_id=f"e{n}",
        message_id=f"m{n}",
        envelope=Envelope(sender=Mailbox(email="a@jetpost.test"), to=(Mailbox(email=to),)),
        subject="Grüße",
        text="hallo\n",
        headers={"Message-ID": f"<m{n}@jetpost.test>"},
    )


async def test_a_drop_after_data_on_a_pooled_connection_is_not_resent() -> None:
    sink = DroppingSink()
    sink.drop = False
    await sink.start()
    mailer = SmtpMailer(SmtpTarget(host="127.0.0.1", port=sink.port), 1, 5)
    try:
        first = await mailer.send(make_mail(rendered("x@example.com", 1), None, None))
        assert first.kind == "delivered"  # its connection is back in the pool, idle
        sink.drop = True
        second = await mailer.send(make_mail(rendered("x@example.com", 2), None, None))
    finally:
        await mailer.close()
        await sink.stop()
    assert (second.kind, second.uncertain) == ("deferred", True)
    assert len(sink.received) == 2  # one copy each: the dropped one was not sent again
    assert sink.connections == 1


async def test_idn_domain_goes_out_as_an_a_label(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    ids = await send_many(js, ["Kunde <kunde@bücher.example>", "jörg@example.com"])
    settled = await wait_settled(js, ids)
    assert list(settled.values()) == [["delivered"], ["delivered"]]
    got = {m.rcpt_tos: m for m in sink.received}
    idn = got[("kunde@xn--bcher-kva.example",)]
    msg = email.message_from_bytes(idn.data, policy=email.policy.default)
    assert "kunde@xn--bcher-kva.example" in str(msg["To"])
    assert ("jörg@example.com",) in got  # SMTPUTF8, which the sink offers


async def test_utf8_local_part_bounces_with_a_reason_without_smtputf8(
    settings: Settings, js: JetStreamContext
) -> None:
    plain = NoUtf8Sink(None)
    await plain.start()
    running = Pipeline(settings)
    try:
        await running.start(providers=f"smtp://127.0.0.1:{plain.port}")
        ids = await send_many(js, ["jörg@example.com"])
        settled = await wait_settled(js, ids)
    finally:
        await running.stop()
        await plain.stop()
    assert settled[ids[0]] == ["bounced"]
    bounced = (await history(js, ids[0]))[-1]
    assert "SMTPUTF8" in getattr(bounced, "response", "")
    assert plain.received == []
