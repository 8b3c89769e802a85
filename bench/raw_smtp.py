"""Phase (a) of `bench.e2e_send`: the raw limit. Pre-built mails (the shape and size of
jetpost's `welcome` mail) sent with plain aiosmtplib over persistent connections, each
sending its share serially: no NATS, no rendering, no event log."""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib

from bench.measure import Phase, Sink, Watch

SENDER = "bench <bench@example.com>"


_HTML = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
</head>
<body style="margin: 0; padding: 24px; background: #f4f5f7; \
font-family: Helvetica, Arial, sans-serif;">
<div class="card" style="max-width: 480px; margin: 0 auto; padding: 32px; \
background: #ffffff; border-radius: 8px;">
  <h1 style="margin: 0 0 16px; font-size: 22px; color: #1f2937;">Welcome, {name}!</h1>
  <p style="margin: 0 0 12px; font-size: 15px; line-height: 1.5; color: #374151;">\
Your account is ready. We're glad to have you on board.</p>
  <p style="margin: 0 0 12px; font-size: 15px; line-height: 1.5; color: #374151;">\
If you have any questions, just reply to this email.</p>
  <p class="muted" style="margin: 0 0 12px; line-height: 1.5; color: #9ca3af; \
font-size: 13px;">The jetpost team</p>
</div>
</body>
</html>
"""

_TEXT = """Welcome, {name}!

Your account is ready. We're glad to have you on board.
If you have any questions, just reply to this email.

The jetpost team
"""


def build_mail(i: int) -> EmailMessage:
    """Shaped like jetpost's rendering of the `welcome` template (same headers, both
    parts, inlined CSS), so that both phases put about the same bytes on the wire."""
    name = f"User {i}"
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = SENDER
    msg["To"] = f"user{i}@example.com"
    msg["Subject"] = f"Welcome to jetpost, {name}!"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["MIME-Version"] = "1.0"
    msg["Message-ID"] = make_msgid(uuid.uuid4().hex, domain="example.com")
    msg.set_content(_TEXT.format(name=name), subtype="plain", charset="utf-8")
    msg.add_alternative(_HTML.format(name=name), subtype="html", charset="utf-8")
    return msg


Mail = tuple[EmailMessage, list[str]]  # with its envelope recipients, as jetpost has them


def _mails(numbers: range) -> list[Mail]:
    return [(build_mail(i), [f"user{i}@example.com"]) for i in numbers]


async def _send_shares(clients: Sequence[aiosmtplib.SMTP], mails: Sequence[Mail]) -> None:
    """Each connection sends its share serially; the connections run side by side."""

    async def send_share(client: aiosmtplib.SMTP, share: Sequence[Mail]) -> None:
        for mail, recipients in share:
            await client.send_message(mail, sender="bench@example.com", recipients=recipients)

    step = len(clients)
    await asyncio.gather(*(send_share(c, mails[k::step]) for k, c in enumerate(clients)))


@dataclass
class RawSender:
    """(a): `connections` aiosmtplib clients, connected and warmed up."""

    sink: Sink
    clients: list[aiosmtplib.SMTP]
    timeout: float
    sent: int = 0  # mails numbered so far (each block sends new ones)

    async def block(self, n: int, watch: Watch) -> Phase:
        mails = _mails(range(self.sent, self.sent + n))
        self.sent += n
        before = await self.sink.stats()
        watch.start()
        start = time.monotonic()
        await _send_shares(self.clients, mails)
        after = await self.sink.wait(before.count + n, self.timeout)
        cpu = watch.stop()
        return Phase("raw", n, after.stamp - start, after.bytes - before.bytes, cpu)


@contextlib.asynccontextmanager
async def raw_sender(
    sink: Sink, connections: int, warmup: int, timeout: float
) -> AsyncIterator[RawSender]:
    clients = [
        aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, timeout=30)
        for _ in range(connections)
    ]
    try:
        await asyncio.gather(*(c.connect() for c in clients))
        sender = RawSender(sink, clients, timeout, sent=warmup)
        base = (await sink.stats()).count
        await _send_shares(clients, _mails(range(warmup)))
        await sink.wait(base + warmup, timeout)
        yield sender
    finally:
        for client in clients:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
            client.close()
