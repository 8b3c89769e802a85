"""`log://`: writes each mail to a log instead of sending it (development without
any SMTP server). Every mail maps to delivered, with the response "logged"."""

from __future__ import annotations

import logging

from services.sender.mailer import Mail
from services.sender.outcome import Outcome


class LogMailer:
    def __init__(self, logger: logging.Logger, name: str = "log") -> None:
        self.name = name
        self._logger = logger

    async def start(self) -> None:
        """Nothing to open."""

    async def send(self, mail: Mail) -> Outcome:
        text = mail.data.decode("utf-8", "replace").replace("\r\n", "\n")
        self._logger.info("mail from %s to %s\n%s", mail.sender, ", ".join(mail.recipients), text)
        return Outcome("delivered", None, "logged")

    async def close(self) -> None:
        """Nothing to close."""
