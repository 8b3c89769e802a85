"""Bounce and complaint reports over real SMTP to the feedback receiver, about mail the
real pipeline sent: each becomes an event of that message in MAIL_EVT, stored once,
before the receiver says 250; what cannot be matched is kept as `feedback_unmatched`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from services.capture import CaptureSink
from services.feedback.logic import Inbound, Known, analyse, decide
from services.feedback.matching import verp_address
from services.feedback.receiver import FeedbackReceiver, run_feedback
from shared.embedded import EmbeddedNats, free_port
from shared.eventlog import append
from shared.events import Bounced, Complained, Event, FeedbackUnmatched
from shared.settings import Settings
from shared.subjects import CMD_SEND, CMD_STREAM, event_filter
from tests.conftest import Pipeline
from tests.eventlog_reader import history, read_all, wait_for_event

FIXTURES = Path(__file__).parents[1] / "fixtures" / "feedback"


@pytest.fixture
async def receiver(js: JetStreamContext, settings: Settings) -> AsyncIterator[FeedbackReceiver]:
    running = FeedbackReceiver(js, bounce_domain=settings.feedback_domain,
                               mail_domain=settings.mail_domain)  # fmt: skip
    await running.start()
    yield running
    await running.stop()


async def sent_mail(js: JetStreamContext, sink: CaptureSink, to: str) -> tuple[str, bytes]:
    """Send a mail through the pipeline; its id and the header section as delivered."""
    mid = uuid.uuid4().hex
    command = {"to": to, "template": "welcome", "vars": {"name": "Nobody"}, "message_id": mid}
    await js.publish(CMD_SEND, json.dumps(command).encode(), stream=CMD_STREAM)
    await wait_for_event(js, mid, "delivered")
    for mail in await sink.wait_for(1, timeout=10):
        if f"<{mid}@".encode() in mail.data:
            return mid, mail.data.split(b"\r\n\r\n", 1)[0]
    raise AssertionError(f"{mid} not in the sink")


def postfix_dsn(returned_headers: bytes, recipient: str, to: str) -> bytes:
    """A Postfix hard bounce (5.1.1) returning the headers of the mail it is about."""
    queue_id = uuid.uuid4().hex[:12].upper()
    boundary = f"{queue_id}.1715677923/mx1.example.net"
    text = f"""\
Return-Path: <>
Date: Tue, 14 May 2024 09:12:03 +0000 (UTC)
From: MAILER-DAEMON@mx1.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{boundary}"
Message-Id: <20240514091203.{queue_id}@mx1.example.net>

This is a MIME-encapsulated message.

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

<{recipient}>: host mail.example.net[203.0.113.25] said: 550 5.1.1
    <{recipient}>: Recipient address rejected: User unknown (in reply to RCPT TO)

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx1.example.net
X-Postfix-Queue-ID: {queue_id}
Arrival-Date: Tue, 14 May 2024 09:12:01 +0000 (UTC)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: failed
Status: 5.1.1
Remote-MTA: dns; mail.example.net
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected:
    User unknown in virtual mailbox table

--{boundary}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

"""
    tail = f"\r\n\r\n--{boundary}--\r\n".encode()
    return text.replace("\n", "\r\n").encode() + returned_headers + tail


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


async def deliver(receiver: FeedbackReceiver, data: bytes, rcpt: str, sender: str = "") -> str:
    """Hand a report to the receiver as an MTA would (a bounce has the null sender)."""
    return await deliver_to(receiver.port, data, rcpt, sender)


async def deliver_to(port: int, data: bytes, rcpt: str, sender: str = "") -> str:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
        _, reply = await client.sendmail(sender, [rcpt], data)
    return reply


async def of_type(js: JetStreamContext, mid: str, event_type: str) -> list[Event]:
    return [e for e in await history(js, mid) if e.type == event_type]


async def test_dsn_to_the_verp_address_bounces_the_message(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink, receiver: FeedbackReceiver,
    settings: Settings,
) -> None:  # fmt: skip
    mid, headers = await sent_mail(js, sink, "nobody@example.net")
    rcpt = verp_address(mid, settings.feedback_domain)
    await deliver(receiver, postfix_dsn(headers, "nobody@example.net", rcpt), rcpt)

    # 250 came after the append: the event is there now, no waiting
    (bounce,) = await of_type(js, mid, "bounced")
    assert isinstance(bounce, Bounced)
    assert (bounce.kind, bounce.status, bounce.smtp_code, bounce.source) == (
        "hard", "5.1.1", 550, "dsn",
    )  # fmt: skip
    assert bounce.recipients == ("nobody@example.net",)
    assert bounce.response.startswith("550 5.1.1 <nobody@example.net>: Recipient address")
    assert bounce.correlation_id is not None


async def test_dsn_matched_by_message_id_alone(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink, receiver: FeedbackReceiver
) -> None:
    mid, headers = await sent_mail(js, sink, "nobody@example.net")
    only_message_id = b"\r\n".join(
        line for line in headers.split(b"\r\n") if not line.lower().startswith(b"x-jetpost")
    )
    assert f"Message-ID: <{mid}@jetpost.test>".encode() in only_message_id
    data = postfix_dsn(only_message_id, "nobody@example.net", "noreply@jetpost.test")
    await deliver(receiver, data, "noreply@jetpost.test")

    (bounce,) = await of_type(js, mid, "bounced")
    assert isinstance(bounce, Bounced) and (bounce.kind, bounce.status) == ("hard", "5.1.1")


async def test_arf_report_is_a_complaint(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink, receiver: FeedbackReceiver
) -> None:
    mid, _ = await sent_mail(js, sink, "carol@mail.example.org")
    report = (FIXTURES / "arf_abuse.eml").read_bytes()
    report = report.replace(b"9a8b7c6d5e4f40312a1b0c9d8e7f6a5b", mid.encode())
    await deliver(receiver, crlf(report), "fbl@jetpost.test")

    (complaint,) = await of_type(js, mid, "complained")
    assert isinstance(complaint, Complained)
    assert (complaint.recipient, complaint.feedback_type, complaint.source) == (
        "carol@mail.example.org", "abuse", "arf",
    )  # fmt: skip


async def test_the_same_dsn_twice_is_one_event(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink, receiver: FeedbackReceiver,
    settings: Settings,
) -> None:  # fmt: skip
    mid, headers = await sent_mail(js, sink, "nobody@example.net")
    rcpt = verp_address(mid, settings.feedback_domain)
    data = postfix_dsn(headers, "nobody@example.net", rcpt)
    await deliver(receiver, data, rcpt)
    await deliver(receiver, data, rcpt)
    assert len(await of_type(js, mid, "bounced")) == 1


async def test_a_report_already_in_the_log_is_not_appended_again(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink, receiver: FeedbackReceiver,
    settings: Settings,
) -> None:  # fmt: skip
    """Past the stream's duplicate window the receiver itself finds the event: stored
    here under another Nats-Msg-Id, as if appended long ago."""
    mid, headers = await sent_mail(js, sink, "nobody@example.net")
    rcpt = verp_address(mid, settings.feedback_domain)
    data = postfix_dsn(headers, "nobody@example.net", rcpt)
    mail = Inbound("", (rcpt,), data)
    domains = {"bounce_domain": settings.feedback_domain, "mail_domain": settings.mail_domain}
    ((earlier, _),) = decide(analyse(mail, **domains), mail, Known(mid))
    await append(js, earlier, n=1)

    await deliver(receiver, data, rcpt)
    assert [e.event_id for e in await of_type(js, mid, "bounced")] == [earlier.event_id]


async def test_unmatchable_mail_is_recorded_not_dropped(
    js: JetStreamContext, receiver: FeedbackReceiver, settings: Settings
) -> None:
    garbage = crlf((FIXTURES / "garbage.eml").read_bytes())
    await deliver(receiver, garbage, "noreply@jetpost.test", sender="dave@example.org")
    unknown = uuid.uuid4().hex  # a VERP address for a message the log never saw
    rcpt = verp_address(unknown, settings.feedback_domain)
    dsn = postfix_dsn(b"Subject: hello", "nobody@example.net", rcpt)
    await deliver(receiver, dsn, rcpt)
    await deliver(receiver, garbage, "noreply@jetpost.test", sender="dave@example.org")

    stored = await read_all(js, event_filter("feedback_unmatched"))
    assert all(isinstance(e, FeedbackUnmatched) for e in stored)
    by_kind = {e.kind: e for e in stored if isinstance(e, FeedbackUnmatched)}
    assert len(stored) == 2 and set(by_kind) == {"unknown", "dsn"}  # garbage stored once
    other = by_kind["unknown"]
    assert other.message_id.startswith("fb-")
    assert (other.mail_from, other.rcpt_tos) == ("dave@example.org", ("noreply@jetpost.test",))
    assert "I am out of the office" in other.raw_excerpt
    assert by_kind["dsn"].reason == f"message {unknown} (verp) not in the log"


async def test_mail_for_other_domains_is_refused(receiver: FeedbackReceiver) -> None:
    garbage = crlf((FIXTURES / "garbage.eml").read_bytes())
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await deliver(receiver, garbage, "someone@elsewhere.example")


async def test_nats_away_means_451_and_the_retry_is_stored(
    nats_server: EmbeddedNats, nc: Client, js: JetStreamContext, settings: Settings
) -> None:
    quick = nc.jetstream(timeout=1.0)
    receiver = FeedbackReceiver(quick, bounce_domain=settings.feedback_domain,
                                mail_domain=settings.mail_domain)  # fmt: skip
    await receiver.start()
    try:
        garbage = crlf((FIXTURES / "garbage.eml").read_bytes())
        port = int(nats_server.url.rsplit(":", 1)[1])
        nats_server.stop()
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await deliver(receiver, garbage, "noreply@jetpost.test")
        assert refused.value.code == 451

        nats_server.port = port
        nats_server.start()
        async with asyncio.timeout(30):  # the sending MTA retries until NATS is back
            while True:
                try:
                    await deliver(receiver, garbage, "noreply@jetpost.test")
                    break
                except aiosmtplib.SMTPDataError as exc:
                    assert exc.code == 451
                    await asyncio.sleep(0.2)
        assert [e.type for e in await read_all(js, event_filter("feedback_unmatched"))] == [
            "feedback_unmatched"
        ]
    finally:
        await receiver.stop()


async def test_run_feedback_serves_until_stopped(js: JetStreamContext, settings: Settings) -> None:
    port = free_port()
    configured = settings.model_copy(update={"bounce_port": port})
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_feedback(configured, stop, started))
    try:
        async with asyncio.timeout(15):
            await started.wait()
        garbage = crlf((FIXTURES / "garbage.eml").read_bytes())
        assert await deliver_to(port, garbage, "abuse@jetpost.test") == "OK"
        assert len(await read_all(js, event_filter("feedback_unmatched"))) == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        raise AssertionError("the receiver still listens after stop")
