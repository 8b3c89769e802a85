"""The bytes of the common mail, written directly: the `email` package's header
parsing and folding was a third of the pipeline's CPU.

Most mail is ASCII headers that fit on a line, a text and/or an HTML part and no
attachments. For exactly that shape this writes what `mime.build_message(...)
.as_bytes()` writes, byte for byte, but for the multipart boundary, which here comes
from a hash of the content instead of a random number (so a retry also sends the same
bytes). Anything else (a non-ASCII or long header, a display name that needs quoting,
a header the `email` package gives structure to, attachments, SMTPUTF8) returns None,
and the `email` package builds it. tests/unit/test_fast_mime.py holds the two
equal. Bodies are encoded by the `email` package's own choice of transfer encoding
(services/sender/fast_qp.py).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from services.sender.fast_qp import encode_text
from services.sender.mime import _OWNED, POLICY, needs_smtputf8
from shared.events import Rendered
from shared.mailbox import Mailbox

MAX_LINE = 78
CRLF = "\r\n"
_ATEXT_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+( [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_PLAIN_VALUE = re.compile(r"[!-~]+( [!-~]+)*\Z")  # printable ASCII words, single spaces
_MSG_ID = re.compile(r"<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+>\Z")
# Headers the email package would keep as they are (unstructured, or one plain id).
_AS_IS = {"message-id", "list-unsubscribe-post"}


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def rfc_date(moment: datetime) -> str:
    """`email.utils.format_datetime(moment.astimezone(UTC))`, without its timetuple
    and strftime calls."""
    t = moment.astimezone(UTC)
    return (f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} +0000")  # fmt: skip


def _plain(value: str) -> bool:
    """Kept as it is by the email package: no encoded words to decode, nothing to fold."""
    return bool(_PLAIN_VALUE.match(value)) and "=?" not in value


def _address(mailbox: Mailbox) -> str | None:
    local, _, domain = mailbox.smtp_address.rpartition("@")
    if not (_DOT_ATOM.match(local) and _DOT_ATOM.match(domain)):
        return None
    if not mailbox.name:
        return f"{local}@{domain}"
    return f"{mailbox.name} <{local}@{domain}>" if _ATEXT_NAME.match(mailbox.name) else None


def _line(name: str, value: str) -> str | None:
    line = f"{name}: {value}"
    return line + CRLF if len(line) <= MAX_LINE else None


def _extra(name: str, value: str) -> str | None:
    low = name.lower()
    if low == "list-unsubscribe":  # as mime._UriListHeader folds it
        uris = [uri.strip() for uri in re.split(r",\s*(?=<)", value)]
        if not value.isascii() or any(len(u) > 900 or not _plain(u) for u in uris):
            return None
        return f"{name}: " + f",{CRLF} ".join(uris) + CRLF
    if not (low in _AS_IS or low.startswith("x-")) or not _plain(value):
        return None
    if low == "message-id" and not _MSG_ID.match(value):
        return None
    return _line(name, value)


def _headers(rendered: Rendered) -> list[str] | None:
    envelope = rendered.envelope
    extra = rendered.headers
    present = {name.lower() for name in extra}
    lines: list[str | None] = []
    groups = [("From", (envelope.sender,)), ("To", envelope.to), ("Cc", envelope.cc)]
    if "reply-to" not in present:
        groups.append(("Reply-To", envelope.reply_to))
    for name, mailboxes in groups:
        if mailboxes:
            addresses = [_address(m) for m in mailboxes]
            if any(a is None for a in addresses):
                return None
            lines.append(_line(name, ", ".join(a for a in addresses if a)))
    subject = rendered.subject
    lines.append(_line("Subject", subject) if _plain(subject) else None)
    if "date" not in present:
        lines.append(_line("Date", rfc_date(rendered.occurred_at)))
    lines.append("MIME-Version: 1.0" + CRLF)
    lines.extend(_extra(n, v) for n, v in extra.items() if n.lower() not in _OWNED)
    return None if any(line is None for line in lines) else [ln for ln in lines if ln]


def _part(content: str, subtype: str, *, inner: bool) -> tuple[str, str]:
    """Headers and body of one text part (`inner`: a part of the alternative)."""
    cte, data = encode_text(content, POLICY)
    head = f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
    head += f"Content-Transfer-Encoding: {cte}{CRLF}"
    if inner and subtype == "html":  # what EmailMessage.add_alternative writes
        head += "MIME-Version: 1.0" + CRLF
    return head, data.replace("\n", CRLF)


def fast_bytes(rendered: Rendered) -> bytes | None:
    """The message as `mime.build_message` would flatten it, or None: not this shape."""
    if rendered.attachments or needs_smtputf8(rendered):
        return None
    headers = _headers(rendered)
    if headers is None:
        return None
    text, html = rendered.text, rendered.html
    if not (text and html):
        head, body = _part(html if html and not text else (text or ""),
                           "html" if html and not text else "plain", inner=False)  # fmt: skip
        message = "".join(headers) + head + CRLF + body
        return _encode(message)
    (text_head, text_body), (html_head, html_body) = (
        _part(text, "plain", inner=True),
        _part(html, "html", inner=True),
    )
    digest = hashlib.sha256(f"{rendered.message_id}\0{text}\0{html}".encode()).digest()
    boundary = f"==============={int.from_bytes(digest[:8]) % 10**19:019d}=="
    if boundary in text_body or boundary in html_body:  # pragma: no cover (a hash collision)
        return None
    message = (
        "".join(headers)
        + f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"{CRLF}{CRLF}'
        + f"--{boundary}{CRLF}{text_head}{CRLF}{text_body}"
        + f"{CRLF}--{boundary}{CRLF}{html_head}{CRLF}{html_body}"
        + f"{CRLF}--{boundary}--{CRLF}"
    )
    return _encode(message)


def _encode(message: str) -> bytes:
    # 8bit bodies come back from the encoder as surrogate-escaped ASCII
    return message.encode("ascii", "surrogateescape")
