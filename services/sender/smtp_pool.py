"""Pooled SMTP connections to one host, and one mail transaction on them.

Shared by the relay provider (`smtp.py`) and direct delivery (`mx.py`, one pool per
MX host). A TCP + EHLO (+ TLS + AUTH) handshake per mail would dominate throughput,
so connections are kept and reused.

A pooled connection the server closed while it sat idle fails on its first command
(MAIL FROM): only then is the mail tried once more at once, on a fresh connection.
A connection lost later is never retried inside the attempt; one lost during DATA
is marked `uncertain` (the server may have taken the mail): neither retried nor
failed over, as a second copy would be a duplicate (issue 14, item 9). The next
attempt, if any, is its own event in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import replace

import aiosmtplib

from services.sender.envelope import mail_from, rcpt_to
from services.sender.mailer import Mail
from services.sender.outcome import SEND_ERRORS, Outcome, classify_exception, classify_success
from services.sender.slots import Slots
from services.sender.smtp_commands import data
from shared.telemetry import smtp as smtp_telemetry

# The server answered with a refusal: the connection itself is still in sync.
_REFUSALS = (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused)
# What a connection closed while idle raises on its next command.
_STALE = (aiosmtplib.SMTPServerDisconnected, ConnectionError)


class _Stale(Exception):
    """A reused connection failed on its first command: it had gone stale while idle."""


class SmtpPool:
    """Up to `size` connections to one host, opened on demand and reused."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        size: int,
        timeout: float,
        use_tls: bool = False,
        start_tls: bool | None = None,
        username: str | None = None,
        password: str | None = None,
        validate_certs: bool = True,
        server_name: str | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.host = server_name or host  # what outcomes name (the MX host for mx://)
        self._port = port
        self._new = functools.partial(
            aiosmtplib.SMTP,
            hostname=host,
            port=port,
            timeout=timeout,
            use_tls=use_tls,
            start_tls=start_tls,
            username=username,
            password=password,
            validate_certs=validate_certs,
        )
        # A slot is held for a whole send, so open connections never exceed `size`;
        # bulk mail takes one only when no other mail waits (services/sender/slots.py).
        self._slots = Slots(size)
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self.transactions = 0  # MAIL FROM commands sent (what a test can count)

    async def send(self, mail: Mail) -> Outcome:
        with smtp_telemetry.transaction(self.host, self._port, mail.recipients) as reply:
            outcome = await self._send(mail)
            reply(outcome.code)
            return outcome

    async def _send(self, mail: Mail) -> Outcome:
        async with self._slots.held(bulk=mail.bulk):
            smtp = self._take_idle()
            if smtp is not None:
                try:
                    return await self._transact(smtp, mail, reused=True)
                except _Stale:
                    pass  # closed by the server while idle: once more, on a fresh connection
                except SEND_ERRORS as exc:
                    return self._mark(classify_exception(exc))
            try:
                smtp = await self._connect()
                return await self._transact(smtp, mail, reused=False)
            except SEND_ERRORS as exc:
                return self._mark(classify_exception(exc))

    async def close(self) -> None:
        while not self._idle.empty():
            smtp = self._idle.get_nowait()
            with contextlib.suppress(*SEND_ERRORS):
                await smtp.quit()  # polite; closes on success
            smtp.close()

    def _mark(self, outcome: Outcome) -> Outcome:
        return replace(outcome, host=self.host)

    def _take_idle(self) -> aiosmtplib.SMTP | None:
        while not self._idle.empty():
            smtp = self._idle.get_nowait()
            if smtp.is_connected:
                return smtp
        return None

    async def _connect(self) -> aiosmtplib.SMTP:
        smtp = self._new()
        await smtp.connect()  # STARTTLS and AUTH happen here, as configured
        return smtp

    async def _transact(self, smtp: aiosmtplib.SMTP, mail: Mail, *, reused: bool) -> Outcome:
        """One mail transaction. Refusals become an Outcome; anything else raised has
        left the session unusable (timeout, socket error, cancellation): it is closed."""
        options: list[str] = []
        encoding = "ascii"
        if mail.smtputf8:
            if not smtp.supports_extension("smtputf8"):
                self._idle.put_nowait(smtp)
                reason = f"553 5.6.7 an address needs SMTPUTF8, which {self.host} does not offer"
                return self._mark(Outcome("bounced", 553, reason))
            options, encoding = ["SMTPUTF8"], "utf-8"
        try:
            try:
                self.transactions += 1
                await mail_from(smtp, mail.sender, options, encoding)
            except _STALE as exc:
                smtp.close()
                if reused:
                    raise _Stale from exc
                raise
            refused: dict[str, aiosmtplib.SMTPResponse] = {}
            failures: list[aiosmtplib.SMTPRecipientRefused] = []
            for rcpt in mail.recipients:
                try:
                    await rcpt_to(smtp, rcpt, encoding)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    if exc.code == 421:  # the server is closing the session
                        raise
                    failures.append(exc)
                    refused[rcpt] = aiosmtplib.SMTPResponse(exc.code, exc.message)
            if len(failures) == len(mail.recipients):
                raise aiosmtplib.SMTPRecipientsRefused(failures)
            try:
                response = await data(smtp, mail.data)
            except _REFUSALS:
                raise
            except SEND_ERRORS as exc:
                smtp.close()
                outcome = classify_exception(exc)
                return self._mark(replace(outcome, uncertain=True))
        except _REFUSALS as exc:
            await self._reset(smtp)
            return self._mark(classify_exception(exc))
        except BaseException:
            smtp.close()
            raise
        self._idle.put_nowait(smtp)
        return self._mark(classify_success(refused, response.message))

    async def _reset(self, smtp: aiosmtplib.SMTP) -> None:
        """Back to the pool after a refusal, once RSET shows the session is sane."""
        try:
            if smtp.is_connected:  # not after a 421, on which the server hangs up
                await smtp.rset()
                self._idle.put_nowait(smtp)
        except SEND_ERRORS:
            smtp.close()
