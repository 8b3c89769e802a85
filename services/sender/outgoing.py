"""A `rendered` event becomes the `Mail` every provider sends: the MIME bytes made and
DKIM-signed once, and the SMTP envelope (A-label domains, SMTPUTF8 when needed).

Built the same way on every attempt from the same event (Date and the signature's
`t=` are the render time), so every retry and every provider sends the same bytes.
"""

from __future__ import annotations

from services.sender.attachments import attach
from services.sender.dkim_sign import DkimSigner
from services.sender.fast_mime import fast_bytes
from services.sender.mailer import Mail
from services.sender.mime import (
    build_message,
    envelope_recipients,
    envelope_sender,
    needs_smtputf8,
)
from shared.events import Rendered
from shared.mailbox import ascii_domain


def make_mail(
    rendered: Rendered,
    bounce_domain: str | None,
    signer: DkimSigner | None,
    attachments: list[bytes] | None = None,
) -> Mail:
    """ValueError/TypeError for a mail that cannot be built; DkimMissing when a key is
    required and absent. `attachments`: the content of `rendered.attachments`, in order."""
    data = fast_bytes(rendered)  # the common shape, without the email package
    if data is None:
        message = build_message(rendered)
        if rendered.attachments:
            attach(message, rendered.attachments, attachments or [])
        # flattened once, by the message's own SMTP policy (Bcc is never a header)
        data = message.as_bytes()
    if signer is not None:
        domain = ascii_domain(rendered.envelope.sender.domain)
        data = signer.apply(data, domain, int(rendered.occurred_at.timestamp()))
    return Mail(
        data=data,
        sender=envelope_sender(rendered, bounce_domain),
        recipients=tuple(envelope_recipients(rendered)),
        smtputf8=needs_smtputf8(rendered),
        bulk=rendered.bulk,
    )
