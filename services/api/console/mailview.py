"""A mail as a reader sees it: headers, HTML part, text part and raw source, from
the bytes of a message (a captured .eml, or the MIME the sender builds from the
`rendered` event in the log). Pure: no I/O."""

from __future__ import annotations

import email.policy
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser

from services.sender.mime import build_message
from shared.events import Event, Rendered

# The mail's HTML is someone else's markup: served on its own with this policy and shown
# in an <iframe sandbox>: no script, no form, no plugin, no remote fetch (images only
# inline), and it may only be framed by the console.
MAIL_CSP = (
    "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'; "
    "font-src data:; frame-ancestors 'self'; form-action 'none'; base-uri 'none'; sandbox"
)


@dataclass(frozen=True)
class MailView:
    subject: str
    headers: list[tuple[str, str]]
    html: str | None
    text: str | None
    raw: str


def _part(message: EmailMessage, subtype: str) -> str | None:
    body = message.get_body(preferencelist=(subtype,))
    if body is None:
        return None
    content = body.get_content()
    return content if isinstance(content, str) else None


def view_of(data: bytes) -> MailView:
    message = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return MailView(
        subject=str(message.get("Subject", "")),
        headers=[(name, str(value)) for name, value in message.items()],
        html=_part(message, "html"),
        text=_part(message, "plain"),
        raw=data.decode("utf-8", "replace"),
    )


def rendered_mail(events: Sequence[Event]) -> MailView | None:
    """The mail of the message's last `rendered` event, built as the sender builds it."""
    rendered = [e for e in events if isinstance(e, Rendered)]
    if not rendered:
        return None
    return view_of(build_message(rendered[-1]).as_bytes(policy=email.policy.SMTP))
