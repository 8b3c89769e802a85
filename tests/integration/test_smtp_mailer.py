"""SmtpMailer against a real aiosmtpd sink (CaptureSink on a free port): what arrives,
connection reuse, scripted refusals, a vanished server, and the log mailer.
(The contract every provider meets is in test_provider_contract.py.)"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from services.capture import CaptureSink
from services.sender.log import LogMailer
from services.sender.mailer import Mail
from services.sender.mime import build_message
from services.sender.outgoing import make_mail
from services.sender.registry import build_router
from services.sender.smtp import SmtpMailer
from shared.events import Envelope, Rendered
from shared.mailbox import Mailbox
from shared.settings import ConfigError, Settings, SmtpTarget


def rendered(n: int = 0, subject: str = "Hello") -> Rendered:
    return Rendered(
        event_id=f"e{n}",
        message_id=f"m{n}",
        envelope=Envelope(
            sender=Mailbox(email="a@b.c"),
            to=(Mailbox(email="x@y.z", name="X"),),
            cc=(Mailbox(email="c@y.z"),),
            bcc=(Mailbox(email="hidden@y.z"),),
        ),
        subject=subject,
        text="plain body\n",
        html="<p>html body</p>\n",
        headers={"Message-ID": f"<m{n}@b.c>", "X-Custom": "yes"},
    )


@pytest.fixture
async def capture(tmp_path: Path) -> AsyncIterator[CaptureSink]:
    sink = CaptureSink(tmp_path / "eml")
    await sink.start()
    yield sink
    await sink.stop()


@pytest.fixture
async def mailer(capture: CaptureSink) -> AsyncIterator[SmtpMailer]:
    smtp = SmtpMailer(SmtpTarget(host="127.0.0.1", port=capture.port), pool_size=2, timeout=5)
    await smtp.start()
    yield smtp
    await smtp.close()


def built(event: Rendered) -> Mail:
    return make_mail(event, None, None)


async def send(mailer: SmtpMailer, n: int = 0) -> str:
    outcome = await mailer.send(built(rendered(n)))
    return outcome.kind


async def test_mail_arrives_with_headers_and_both_parts(
    mailer: SmtpMailer, capture: CaptureSink
) -> None:
    outcome = await mailer.send(built(rendered()))
    assert (outcome.kind, outcome.code, outcome.refused) == ("delivered", 250, {})
    [got] = await capture.wait_for(1, timeout=5)
    assert got.mail_from == "a@b.c"
    assert got.rcpt_tos == ("x@y.z", "c@y.z", "hidden@y.z")
    msg = email.message_from_bytes(got.data, policy=email.policy.default)
    assert (msg["From"], msg["To"], msg["Cc"]) == ("a@b.c", "X <x@y.z>", "c@y.z")
    assert (msg["Subject"], msg["Message-ID"], msg["X-Custom"]) == ("Hello", "<m0@b.c>", "yes")
    assert msg["Bcc"] is None and b"hidden" not in got.data
    assert msg["Date"] is not None
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert capture.folder is not None
    [eml] = capture.folder.glob("*.eml")
    assert eml.read_bytes() == got.data
    assert not list(capture.folder.glob(".*.tmp"))


async def test_connections_are_reused(mailer: SmtpMailer, capture: CaptureSink) -> None:
    for n in range(5):
        assert await send(mailer, n) == "delivered"
    kinds = await asyncio.gather(*(send(mailer, n) for n in range(5, 25)))
    assert set(kinds) == {"delivered"}
    assert len(await capture.wait_for(25, timeout=5)) == 25
    assert 1 <= capture.connections <= 2  # pool_size


async def test_scripted_refusals(mailer: SmtpMailer, capture: CaptureSink) -> None:
    capture.script(["451 4.3.0 try later", "550 5.1.1 no such user"])
    mail = built(rendered())
    deferred = await mailer.send(mail)
    bounced = await mailer.send(mail)
    delivered = await mailer.send(mail)
    assert (deferred.kind, deferred.code, deferred.response) == (
        "deferred",
        451,
        "451 4.3.0 try later",
    )
    assert (bounced.kind, bounced.code) == ("bounced", 550)
    assert "5.1.1" in bounced.response
    assert delivered.kind == "delivered"
    assert capture.attempts == 3
    assert len(capture.received) == 1  # refused mail is not stored
    assert capture.connections == 1  # the refusals left the connection in the pool


class SenderRefusingSink(CaptureSink):
    """Refuses the MAIL FROM of senders at `refused.test` (as a policy check would)."""

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if address.endswith("@refused.test"):
            return "550 5.7.1 sender not allowed"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"


async def test_a_refused_sender_bounces_on_a_new_and_on_a_reused_connection(
    tmp_path: Path,
) -> None:
    # the first transaction of a session goes through aiosmtplib's own MAIL (it greets
    # first), later ones through services/sender/envelope.py: the same outcome
    sink = SenderRefusingSink(None)
    await sink.start()
    smtp = SmtpMailer(SmtpTarget(host="127.0.0.1", port=sink.port), pool_size=1, timeout=5)
    await smtp.start()
    try:
        refused = replace(built(rendered()), sender="bounces@refused.test")
        outcomes = [await smtp.send(mail) for mail in (refused, built(rendered(1)), refused)]
        assert [(o.kind, o.code) for o in outcomes] == [
            ("bounced", 550), ("delivered", 250), ("bounced", 550),
        ]  # fmt: skip
        assert outcomes[2].response == outcomes[0].response
        assert [m.mail_from for m in sink.received] == ["a@b.c"]
        assert sink.connections == 1  # each refusal left the session in the pool
    finally:
        await smtp.close()
        await sink.stop()


async def test_stopped_sink_defers(mailer: SmtpMailer, capture: CaptureSink) -> None:
    assert await send(mailer) == "delivered"
    await capture.stop()
    outcome = await mailer.send(built(rendered(1)))
    assert (outcome.kind, outcome.code, outcome.connection) == ("deferred", None, True)


async def test_pooled_connection_dropped_by_server_is_replaced(
    mailer: SmtpMailer, capture: CaptureSink
) -> None:
    assert await send(mailer) == "delivered"
    await capture.stop()
    restarted = CaptureSink(None, port=capture.port)
    await restarted.start()
    try:
        assert await send(mailer, 1) == "delivered"
        assert restarted.connections == 1
    finally:
        await restarted.stop()


async def test_header_injection_in_subject_is_refused() -> None:
    with pytest.raises(ValueError):
        build_message(rendered(subject="Hi\r\nBcc: spy@evil.test"))


async def test_log_mailer_logs_the_whole_message(caplog: pytest.LogCaptureFixture) -> None:
    mailer = LogMailer(logging.getLogger("jetpost.mail.test"))
    with caplog.at_level(logging.INFO, logger="jetpost.mail.test"):
        outcome = await mailer.send(built(rendered()))
    assert (outcome.kind, outcome.response, mailer.name) == ("delivered", "logged", "log")
    assert "Subject: Hello" in caplog.text and "<p>html body</p>" in caplog.text


async def test_build_router() -> None:
    def names(settings: Settings, target: SmtpTarget | None = None) -> list[str]:
        return [p.name for p in build_router(settings, target).providers]

    target = SmtpTarget(host="127.0.0.1", port=2525)
    assert names(Settings(provider="log")) == ["log"]
    assert names(Settings(provider="smtp", smtp_url=None), target) == ["capture"]
    assert names(Settings(smtp_url="smtp://h:25")) == ["smtp"]
    providers = "smtp://a:25,smtp://b:25#backup,mx://,kumomta+http://k:8000,https+json://h/x"
    assert names(Settings(providers=providers)) == ["smtp1", "backup", "mx", "kumomta", "http"]
    with pytest.raises(ConfigError):
        build_router(Settings(provider="smtp", smtp_url=None))


async def test_credentials_in_the_smtp_url_are_used(tmp_path: Path) -> None:
    sink = CaptureSink(tmp_path / "auth", credentials=("jet", "p@ss word"))
    port = await sink.start()
    try:
        good = SmtpMailer(SmtpTarget.parse(f"smtp://jet:p%40ss%20word@127.0.0.1:{port}"), 1, 5)
        bad = SmtpMailer(SmtpTarget.parse(f"smtp://jet:wrong@127.0.0.1:{port}"), 1, 1)
        mail = built(rendered())
        assert (await good.send(mail)).kind == "delivered"
        refused = await bad.send(mail)
        # our credentials are wrong, not the mail: retried later, never a bounce
        assert refused.kind == "deferred"
        await good.close()
        await bad.close()
    finally:
        await sink.stop()
    assert len(sink.received) == 1
