"""A `rendered` event becomes an RFC 5322 message here, with the standard library only.

`email.policy.SMTP` gives CRLF line endings and refuses header values that carry CR
or LF, so neither a subject nor a caller's header can smuggle in a second header.
Header names are checked here too (the policy does not). Bcc is never a header: it
lives only in the SMTP envelope, see `envelope_recipients`.
"""

from __future__ import annotations

import email.policy
import re
from datetime import UTC, datetime
from email.headerregistry import HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime

from services.feedback.matching import verp_address
from shared.events import Rendered
from shared.mailbox import Mailbox, has_line_break

# RFC 5322 field-name: printable US-ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+\Z")

# Headers the envelope and the body own; a same-named entry in `rendered.headers` is
# dropped, so that (for instance) a caller's Bcc or From never reaches the wire.
_OWNED = frozenset(
    {"from", "to", "cc", "bcc", "subject", "mime-version", "content-type"}
    | {"content-transfer-encoding"}
)


class _UriListHeader(UnstructuredHeader):
    """RFC 2369 `<uri>, <uri>` (List-Unsubscribe): folded only between its URIs. The
    default folding would RFC 2047-encode a URI longer than a line, which no mail
    client reads there. Anything else (non-ASCII, a URI past 900 characters) folds as usual."""

    name: str  # BaseHeader's, which the registry mixes in

    def fold(self, *, policy: Policy) -> str:
        uris = [uri.strip() for uri in re.split(r",\s*(?=<)", str(self))]
        if not str(self).isascii() or any(len(uri) > 900 for uri in uris):
            return str(super().fold(policy=policy))  # type: ignore[misc]
        return f"{self.name}: " + f",{policy.linesep} ".join(uris) + policy.linesep


class _CachedRegistry(HeaderRegistry):
    """The standard registry makes a new header class on every lookup (a `type()` call
    per header set); the classes only depend on the name, so make each one once."""

    def __init__(self) -> None:
        super().__init__()
        self.map_to_type("list-unsubscribe", _UriListHeader)  # type: ignore[arg-type]
        self._made: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


# SMTP's rules (CRLF, refuses CR/LF in values) with the cached header classes.
POLICY = email.policy.SMTP.clone(header_factory=_CachedRegistry())
# The same for a mail whose addresses have UTF-8 local parts (RFC 6532 headers; sent
# only to servers offering SMTPUTF8).
POLICY_UTF8 = email.policy.SMTPUTF8.clone(header_factory=_CachedRegistry())


def needs_smtputf8(rendered: Rendered) -> bool:
    envelope = rendered.envelope
    mailboxes = (envelope.sender, *envelope.recipients, *envelope.reply_to)
    return any(mailbox.needs_smtputf8 for mailbox in mailboxes)


def build_message(rendered: Rendered, *, now: datetime | None = None) -> EmailMessage:
    """The message as sent. ValueError if a header name or value would inject headers.
    Date is the render time unless given: a retry builds the very same bytes."""
    envelope = rendered.envelope
    extra = rendered.headers
    for name, value in extra.items():
        if not _FIELD_NAME.match(name):
            raise ValueError(f"invalid header name {name!r}")
        if has_line_break(value):  # email.policy lets a trailing CRLF through
            raise ValueError(f"header {name!r} contains a line break")
    if has_line_break(rendered.subject):
        raise ValueError("subject contains a line break")
    present = {name.lower() for name in extra}

    msg = EmailMessage(policy=POLICY_UTF8 if needs_smtputf8(rendered) else POLICY)
    msg["From"] = envelope.sender.as_address()
    _set_addresses(msg, "To", envelope.to)
    _set_addresses(msg, "Cc", envelope.cc)
    if "reply-to" not in present:
        _set_addresses(msg, "Reply-To", envelope.reply_to)
    msg["Subject"] = rendered.subject
    if "date" not in present:
        msg["Date"] = format_datetime((now or rendered.occurred_at).astimezone(UTC))
    msg["MIME-Version"] = "1.0"
    for name, value in extra.items():
        if name.lower() not in _OWNED:
            msg[name] = value

    if rendered.text and rendered.html:
        msg.set_content(rendered.text, subtype="plain", charset="utf-8")
        msg.add_alternative(rendered.html, subtype="html", charset="utf-8")
    elif rendered.html:
        msg.set_content(rendered.html, subtype="html", charset="utf-8")
    else:
        # Neither part: an empty text body is still a valid mail.
        msg.set_content(rendered.text or "", subtype="plain", charset="utf-8")
    return msg


def _set_addresses(msg: EmailMessage, name: str, mailboxes: tuple[Mailbox, ...]) -> None:
    if mailboxes:
        msg[name] = [mailbox.as_address() for mailbox in mailboxes]


def envelope_sender(rendered: Rendered, bounce_domain: str | None = None) -> str:
    """The MAIL FROM address: with a bounce domain, a VERP address that carries the
    message id, so a bounce names the mail it is about (services/feedback)."""
    if bounce_domain:
        return verp_address(rendered.message_id, bounce_domain)
    return rendered.envelope.sender.smtp_address


def envelope_recipients(rendered: Rendered) -> list[str]:
    """The RCPT TO addresses: To, Cc then Bcc, each once (compared case-insensitively,
    first spelling kept), so a recipient listed twice gets one copy. IDN domains are
    given as A-labels."""
    seen: set[str] = set()
    recipients: list[str] = []
    for mailbox in rendered.envelope.recipients:
        address = mailbox.smtp_address
        key = address.casefold()
        if key not in seen:
            seen.add(key)
            recipients.append(address)
    return recipients
