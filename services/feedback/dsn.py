"""RFC 3464 delivery status notifications: a multipart/report; report-type=
delivery-status mail read into one result per recipient, plus what it says about
the returned message. Pure: bytes in, data out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from services.feedback.addresses import valid_address
from services.feedback.parts import (
    Original,
    ReportError,
    field,
    header_blocks,
    load,
    original_of,
    parts_around,
    typed_value,
)

STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# The reply code at the start of an smtp diagnostic (`550 5.1.1 ...`, `550-5.1.1 ...`),
# and the enhanced code right after it.
_REPLY = re.compile(r"^([245]\d\d)(?:[\s-]|$)")
_REPLY_STATUS = re.compile(r"^[245]\d\d[\s-]+([245]\.\d{1,3}\.\d{1,3})\b")
# Postfix's own diagnostics quote the remote reply: `host mx.example.net[...] said: 550 ...`.
_SAID = re.compile(r"\bsaid:\s*([245]\d\d)\b")


@dataclass(frozen=True)
class RecipientResult:
    final_recipient: str
    action: str  # failed, delayed, delivered, relayed or expanded
    status: str | None  # enhanced status code, e.g. 5.1.1
    diagnostic_code: str | None = None  # the remote reply, without its `smtp;` type
    remote_mta: str | None = None
    original_recipient: str | None = None
    # The valid addresses the report gives for this recipient, best first
    # (Final-Recipient, Original-Recipient, X-Actual-Recipient); () when none is usable
    # (`system;<>`, `LOCAL;<f.b>`): then the text or the matched message must say.
    candidates: tuple[str, ...] = ()
    evidence: str = ""  # the recipient's raw fields (or lines of text), kept in the event
    reply_code: int | None = None  # found in a plain-text notice

    @property
    def smtp_code(self) -> int | None:
        return self.reply_code or smtp_code(self.diagnostic_code)

    @property
    def recipient(self) -> str | None:
        return self.candidates[0] if self.candidates else None


@dataclass(frozen=True)
class DeliveryReport:
    reporting_mta: str | None
    results: tuple[RecipientResult, ...]
    original: Original


def parse_status(value: str | None) -> str | None:
    """`5.1.1 (bad destination mailbox)` -> `5.1.1`; None if there is no code."""
    found = _STATUS.search(value or "")
    return ".".join(found.groups()) if found else None


def smtp_code(diagnostic: str | None) -> int | None:
    """The SMTP reply code of a diagnostic (`550 5.1.1 <bob@...>` -> 550), if it has one."""
    text = (diagnostic or "").strip()
    found = _REPLY.match(text) or _SAID.search(text)
    return int(found.group(1)) if found else None


def parse_dsn(mail: bytes | Message) -> DeliveryReport:
    """ReportError when the mail is not a DSN or names no recipient. The status part
    is looked for anywhere: a multipart/report without report-type, or a
    multipart/mixed, carries it as well."""
    parts = parts_around(load(mail), STATUS_TYPES)
    if parts is None:
        raise ReportError("no message/delivery-status part")
    status_part = next((p for p in parts if p.get_content_type() in STATUS_TYPES), None)
    if status_part is None:
        raise ReportError("multipart/report without a message/delivery-status part")
    blocks = header_blocks(status_part)
    if not blocks:
        raise ReportError("empty message/delivery-status part")
    # The first block is per message; each later one is per recipient.
    per_message, per_recipient = blocks[0], blocks[1:]
    if per_message.get("Final-Recipient") is not None:  # a DSN missing its first block
        per_message, per_recipient = Message(), blocks
    results = tuple(r for block in per_recipient if (r := _result(block)) is not None)
    if not results:
        raise ReportError("delivery-status names no recipient")
    return DeliveryReport(
        reporting_mta=typed_value(field(per_message, "Reporting-MTA")),
        results=results,
        original=original_of(parts),
    )


def _candidates(block: Message) -> tuple[str, ...]:
    """Valid addresses for the recipient, best first: Original-Recipient (the address
    as the sender gave it, before any forwarding or aliasing), an rfc822-typed
    Final-Recipient, X-Actual-Recipient, and a Final-Recipient of another type (a
    `LOCAL;` mail-store name is only used when nothing better is there)."""
    typed: list[str] = []
    other: list[str] = []
    for name in ("Original-Recipient", "Final-Recipient", "X-Actual-Recipient"):
        value = field(block, name) or ""
        kind, sep, _ = value.partition(";")
        address = valid_address(typed_value(value) or "")
        if address is None:
            continue
        local = name == "Final-Recipient" and sep and kind.strip().lower() not in ("rfc822", "")
        (other if local else typed).append(address)
    return tuple(dict.fromkeys(typed + other))


def _result(block: Message) -> RecipientResult | None:
    named = [field(block, n) for n in ("Final-Recipient", "Original-Recipient")]
    if not any(named):
        return None
    recipient = (typed_value(named[0]) or "").strip("<>")
    diagnostic = typed_value(field(block, "Diagnostic-Code"))
    status = parse_status(field(block, "Status")) or _status_in(diagnostic)
    action = (field(block, "Action") or "").split("(")[0].strip().lower()
    if action not in ACTIONS:  # missing or unknown: what the status class implies
        action = {"5": "failed", "4": "delayed", "2": "delivered"}.get((status or "?")[0], "failed")
    original = typed_value(field(block, "Original-Recipient"))
    return RecipientResult(
        final_recipient=recipient,
        action=action,
        status=status,
        diagnostic_code=diagnostic,
        remote_mta=typed_value(field(block, "Remote-MTA")),
        original_recipient=original.strip("<>") if original else None,
        candidates=_candidates(block),
        evidence=block.as_string()[:2000],
    )


def _status_in(diagnostic: str | None) -> str | None:
    """A DSN without its (required) Status: the code the remote reply gave, if any."""
    found = _REPLY_STATUS.match((diagnostic or "").strip())
    return found.group(1) if found else None
