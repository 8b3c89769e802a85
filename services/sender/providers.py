"""How a built message leaves: a small `Mailer` protocol and its SMTP and log backends.

The SMTP mailer keeps a bounded pool of open connections, because a TCP + EHLO
(+ TLS + AUTH) handshake per mail would dominate throughput. It never raises for a
server's or the network's failure: it returns an `Outcome` for the caller to record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from services.sender.outcome import SEND_ERRORS, Outcome, classify_exception, classify_success
from shared.settings import ConfigError, Settings, SmtpTarget

# The server answered with a refusal: the connection itself is still in sync.
_REFUSALS = (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused)


class Mailer(Protocol):
    name: str

    async def start(self) -> None: ...

    async def send(self, message: EmailMessage, sender: str, recipients: list[str]) -> Outcome: ...

    async def close(self) -> None: ...


class SmtpMailer:
    """Up to `pool_size` connections, opened on demand and reused across mails."""

    name = "smtp"

    def __init__(self, target: SmtpTarget, pool_size: int, timeout: float) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._target = target
        self._timeout = timeout
        # A slot is held for a whole send, so open connections never exceed pool_size.
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()

    async def start(self) -> None:
        """Nothing to open yet: connections are made by the first sends."""

    async def send(self, message: EmailMessage, sender: str, recipients: list[str]) -> Outcome:
        async with self._slots:
            smtp = self._take_idle()
            if smtp is not None:
                try:
                    return await self._transact(smtp, message, sender, recipients)
                except aiosmtplib.SMTPServerDisconnected:
                    pass  # dropped by the server while idle: once more, on a fresh connection
                except SEND_ERRORS as exc:
                    return classify_exception(exc)
            try:
                smtp = await self._connect()
                return await self._transact(smtp, message, sender, recipients)
            except SEND_ERRORS as exc:
                return classify_exception(exc)

    async def close(self) -> None:
        while not self._idle.empty():
            smtp = self._idle.get_nowait()
            with contextlib.suppress(*SEND_ERRORS):
                await smtp.quit()  # polite; closes on success
            smtp.close()

    def _take_idle(self) -> aiosmtplib.SMTP | None:
        while not self._idle.empty():
            smtp = self._idle.get_nowait()
            if smtp.is_connected:
                return smtp
        return None

    async def _connect(self) -> aiosmtplib.SMTP:
        target = self._target
        smtp = aiosmtplib.SMTP(
            hostname=target.host,
            port=target.port,
            use_tls=target.use_tls,
            start_tls=target.start_tls,
            username=target.username,
            password=target.password,
            timeout=self._timeout,
        )
        await smtp.connect()  # STARTTLS and AUTH happen here, as configured
        return smtp

    async def _transact(
        self, smtp: aiosmtplib.SMTP, message: EmailMessage, sender: str, recipients: list[str]
    ) -> Outcome:
        """One mail transaction. Refusals become an Outcome; anything else raised has
        left the session unusable (timeout, socket error, cancellation): it is closed."""
        try:
            # flattened once, by the message's own SMTP policy (send_message would
            # copy and re-flatten it; Bcc is never a header here, see mime.py)
            errors, response = await smtp.sendmail(sender, recipients, message.as_bytes())
        except _REFUSALS as exc:
            await self._reset(smtp)
            return classify_exception(exc)
        except BaseException:
            smtp.close()
            raise
        self._idle.put_nowait(smtp)
        return classify_success(errors, response)

    async def _reset(self, smtp: aiosmtplib.SMTP) -> None:
        """Back to the pool after a refusal, once RSET shows the session is sane.
        (aiosmtplib already sends one RSET itself but swallows its failure.)"""
        try:
            if smtp.is_connected:  # not after a 421, on which aiosmtplib hangs up
                await smtp.rset()
                self._idle.put_nowait(smtp)
        except SEND_ERRORS:
            smtp.close()


class LogMailer:
    """Delivers to a log: for development without any SMTP server."""

    name = "log"

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    async def start(self) -> None:
        """Nothing to open."""

    async def send(self, message: EmailMessage, sender: str, recipients: list[str]) -> Outcome:
        text = message.as_string(policy=message.policy.clone(linesep="\n"))
        self._logger.info("mail from %s to %s\n%s", sender, ", ".join(recipients), text)
        return Outcome("delivered", None, "logged")

    async def close(self) -> None:
        """Nothing to close."""


def build_mailer(settings: Settings, capture_target: SmtpTarget | None = None) -> Mailer:
    """The configured mailer; `capture_target` stands in when no JETPOST_SMTP_URL is set."""
    if settings.provider == "log":
        return LogMailer(logging.getLogger("jetpost.mail"))
    target = settings.smtp or capture_target
    if target is None:
        raise ConfigError("JETPOST_SMTP_URL: required when JETPOST_PROVIDER=smtp")
    return SmtpMailer(target, settings.smtp_pool_size, settings.smtp_timeout)
