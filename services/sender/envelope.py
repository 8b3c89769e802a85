"""MAIL FROM and RCPT TO as aiosmtplib sends them, without its address parse for the
addresses that cannot need it.

aiosmtplib's `mail()` and `rcpt()` put every address through `email.utils.parseaddr`
and an injection check before quoting it: 8-15 µs per address (the VERP sender is
long), about 2% of the pipeline's CPU per mail. jetpost's envelope addresses are
already validated (email_validator at intake, the VERP address built here). For a
plain address (shared/address_fast.py's: a dot-atom local part @ ASCII LDH labels),
the parse gives the address back unchanged and the check has nothing to find, so the command
goes out byte for byte as aiosmtplib would send it (tests/unit/test_envelope.py checks
that on generated addresses against aiosmtplib's own `quote_address`). Anything else
(a quoted local part, UTF-8 under SMTPUTF8), and a session not yet greeted, goes
through aiosmtplib's methods.

Either way the reply is awaited under `smtp_wait.reply`'s timer rather than
aiosmtplib's `wait_for`.
"""

from __future__ import annotations

import aiosmtplib
from aiosmtplib import SMTPRecipientRefused, SMTPResponse, SMTPSenderRefused, SMTPStatus

from services.sender.smtp_wait import reply
from shared.address_fast import PLAIN_ADDRESS

_ACCEPTED_RCPT = (SMTPStatus.completed, SMTPStatus.will_forward)


def _direct(smtp: aiosmtplib.SMTP, address: str) -> bool:
    return not smtp.is_ehlo_or_helo_needed and bool(PLAIN_ADDRESS.fullmatch(address))


async def mail_from(
    smtp: aiosmtplib.SMTP, sender: str, options: list[str], encoding: str
) -> SMTPResponse:
    """`smtp.mail(sender, options=options, encoding=encoding)`."""
    if not _direct(smtp, sender):
        return await reply(smtp, smtp.mail(sender, options=options, encoding=encoding,
                                           timeout=None))  # fmt: skip
    extra = [option.encode("ascii") for option in options]
    command = smtp.execute_command(b"MAIL", b"FROM:<" + sender.encode(encoding) + b">", *extra,
                                   timeout=None)  # fmt: skip
    response = await reply(smtp, command)
    if response.code != SMTPStatus.completed:
        raise SMTPSenderRefused(response.code, response.message, sender)
    return response


async def rcpt_to(smtp: aiosmtplib.SMTP, recipient: str, encoding: str) -> SMTPResponse:
    """`smtp.rcpt(recipient, encoding=encoding)`."""
    if not _direct(smtp, recipient):
        return await reply(smtp, smtp.rcpt(recipient, encoding=encoding, timeout=None))
    command = smtp.execute_command(b"RCPT", b"TO:<" + recipient.encode(encoding) + b">",
                                   timeout=None)  # fmt: skip
    response = await reply(smtp, command)
    if response.code not in _ACCEPTED_RCPT:
        raise SMTPRecipientRefused(response.code, response.message, recipient)
    return response
