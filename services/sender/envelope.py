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

The plain ones go out through `smtp_commands.command`, without aiosmtplib's lock and
`wait_for` (services/sender/smtp_commands.py).
"""

from __future__ import annotations

import aiosmtplib
from aiosmtplib import SMTPRecipientRefused, SMTPResponse, SMTPSenderRefused, SMTPStatus

from services.sender.smtp_commands import command
from shared.address_fast import PLAIN_ADDRESS

_ACCEPTED_RCPT = (SMTPStatus.completed, SMTPStatus.will_forward)


def _direct(smtp: aiosmtplib.SMTP, address: str) -> bool:
    return not smtp.is_ehlo_or_helo_needed and bool(PLAIN_ADDRESS.fullmatch(address))


async def mail_from(
    smtp: aiosmtplib.SMTP, sender: str, options: list[str], encoding: str
) -> SMTPResponse:
    """`smtp.mail(sender, options=options, encoding=encoding)`."""
    if not _direct(smtp, sender):
        return await smtp.mail(sender, options=options, encoding=encoding)
    line = b"MAIL FROM:<" + sender.encode(encoding) + b">"
    if options:
        line += b" " + " ".join(options).encode("ascii")
    response = await command(smtp, line)
    if response.code != SMTPStatus.completed:
        raise SMTPSenderRefused(response.code, response.message, sender)
    return response


async def rcpt_to(smtp: aiosmtplib.SMTP, recipient: str, encoding: str) -> SMTPResponse:
    """`smtp.rcpt(recipient, encoding=encoding)`."""
    if not _direct(smtp, recipient):
        return await smtp.rcpt(recipient, encoding=encoding)
    response = await command(smtp, b"RCPT TO:<" + recipient.encode(encoding) + b">")
    if response.code not in _ACCEPTED_RCPT:
        raise SMTPRecipientRefused(response.code, response.message, recipient)
    return response
