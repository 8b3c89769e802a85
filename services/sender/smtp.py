"""`smtp://` and `smtps://`: hand every mail to one relay (STARTTLS when offered, AUTH
when the URL has credentials); the dev capture sink is this provider too.

How answers map: 250 after DATA -> delivered (recipients refused along the way are
listed); 5xx to MAIL/RCPT/DATA -> bounced; 4xx -> deferred. A refused connection, a
timeout, a TLS failure, 421 or a drop -> deferred and counted against the provider
(the router fails over). AUTH or HELO refusals are the relay's problem, never the
recipient's: deferred and counted, never bounced.
"""

from __future__ import annotations

from services.sender.mailer import Mail
from services.sender.outcome import Outcome
from services.sender.smtp_pool import SmtpPool
from shared.settings import SmtpTarget


class SmtpMailer:
    """Up to `pool_size` connections to the relay, opened on demand and reused."""

    def __init__(
        self, target: SmtpTarget, pool_size: int, timeout: float, name: str = "smtp"
    ) -> None:
        self.name = name
        self._pool = SmtpPool(
            target.host,
            target.port,
            size=pool_size,
            timeout=timeout,
            use_tls=target.use_tls,
            start_tls=target.start_tls,
            username=target.username,
            password=target.password,
        )

    async def start(self) -> None:
        """Nothing to open yet: connections are made by the first sends."""

    async def send(self, mail: Mail) -> Outcome:
        return await self._pool.send(mail)

    async def close(self) -> None:
        await self._pool.close()
