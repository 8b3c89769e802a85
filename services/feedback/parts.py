"""Reading the MIME parts that DSNs and ARF reports share (RFC 6522 multipart/report).

Internet mail is parsed with the lenient `compat32` policy: a report is machine-made
but often sloppy, and the stricter header classes can raise on odd values. Field
values are unfolded here instead.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser

# Where a report carries the returned message: whole, or its headers only (RFC 6522,
# RFC 6533's internationalized forms, and a common misspelling).
RETURNED_TYPES = frozenset(
    {"message/rfc822", "text/rfc822-headers", "message/rfc822-headers"}
    | {"message/global", "message/global-headers"}
)


class ReportError(ValueError):
    """The mail is not the report it was read as, or one too broken to use."""


@dataclass(frozen=True)
class Original:
    """What a report says about the message it is about (from its returned part)."""

    message_id: str | None = None  # the Message-ID header, e.g. `<abc@example.com>`
    jetpost_id: str | None = None  # the X-Jetpost-Message-Id header
    to: str | None = None
    sender: str | None = None
    return_path: str | None = None  # its envelope sender: a VERP address, when we used one
    # Message-ID / X-Jetpost-Message-Id values quoted in the report's text, for plain-text
    # bounces that paste the returned headers inline instead of attaching them
    quoted_ids: tuple[str, ...] = ()


def load(mail: bytes | Message) -> Message:
    if isinstance(mail, Message):
        return mail
    return email.message_from_bytes(mail, policy=email.policy.compat32)


def unfold(value: object) -> str:
    """A header value as one line of text, whatever compat32 handed back."""
    return " ".join(str(value).split())


def field(block: Message, name: str) -> str | None:
    value = block.get(name)
    if value is None:
        return None
    return unfold(value) or None


def fields(block: Message, name: str) -> list[str]:
    return [text for value in block.get_all(name, []) if (text := unfold(value))]


def typed_value(value: str | None) -> str | None:
    """`rfc822; bob@example.com` -> `bob@example.com` (the address-type, `dns;`, `smtp;`
    and the like, dropped); a value without a type is returned as it is."""
    if value is None:
        return None
    kind, sep, rest = value.partition(";")
    if sep and kind.strip() and " " not in kind.strip():
        return rest.strip() or None
    return value.strip() or None


def parts_around(msg: Message, content_types: frozenset[str]) -> list[Message] | None:
    """The sibling parts of the first part of one of `content_types`, wherever it is:
    in a multipart/report with or without report-type, or one nested in (or sent
    as) multipart/mixed. None when the mail has no such part."""
    for part in msg.walk():
        payload = part.get_payload() if part.is_multipart() else None
        if not isinstance(payload, list):
            continue
        children = [p for p in payload if isinstance(p, Message)]
        if any(child.get_content_type() in content_types for child in children):
            return children
    return None


def report_type(mail: bytes | Message) -> str | None:
    """The report-type of the first multipart/report in the mail, lower-cased."""
    for part in load(mail).walk():
        if part.get_content_type() == "multipart/report":
            return str(part.get_param("report-type", "") or "").strip().lower() or None
    return None


def header_blocks(part: Message) -> list[Message]:
    """A machine-readable part as its blocks of fields. The stdlib splits
    message/delivery-status into blocks and parses other message/* types as one
    embedded message; anything else is text, split on blank lines here."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    text = text.replace("\r\n", "\n")
    chunks = [chunk for chunk in text.split("\n\n") if chunk.strip()]
    parser = HeaderParser(policy=email.policy.compat32)
    return [parser.parsestr(chunk.strip("\n") + "\n") for chunk in chunks]


def returned_headers(parts: list[Message]) -> Message | None:
    """The headers of the returned message, if the report carries it."""
    for part in parts:
        if part.get_content_type() not in RETURNED_TYPES:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            return payload[0] if payload and isinstance(payload[0], Message) else None
        raw = part.get_payload(decode=True)
        data = raw if isinstance(raw, bytes) else str(payload).encode("utf-8", "replace")
        return BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
    return None


def original_of(parts: list[Message]) -> Original:
    headers = returned_headers(parts)
    if headers is None:
        return Original()
    return Original(
        message_id=field(headers, "Message-ID"),
        jetpost_id=field(headers, "X-Jetpost-Message-Id"),
        to=field(headers, "To"),
        sender=field(headers, "From"),
        return_path=field(headers, "Return-Path"),
    )
