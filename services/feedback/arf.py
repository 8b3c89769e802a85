"""RFC 5965 abuse reports (ARF), the form mailbox providers' feedback loops use: a
multipart/report; report-type=feedback-report mail read into its feedback type, who
it is about and the reported message's ids. Pure: bytes in, data out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from email.message import Message
from email.utils import getaddresses

from services.feedback.parts import (
    Original,
    ReportError,
    field,
    fields,
    header_blocks,
    load,
    original_of,
    parts_around,
    typed_value,
)

ARF_TYPES = frozenset({"message/feedback-report"})


@dataclass(frozen=True)
class FeedbackReport:
    feedback_type: str  # abuse, fraud, virus, other, not-spam, auth-failure (or new ones)
    user_agent: str | None
    original_rcpt_to: tuple[str, ...]  # often redacted or left out by the provider
    original_mail_from: str | None
    reporting_mta: str | None
    source_ip: str | None
    arrival_date: str | None
    original: Original

    @property
    def recipients(self) -> tuple[str, ...]:
        """Who complained: Original-Rcpt-To, else the To of the returned message."""
        if self.original_rcpt_to:
            return self.original_rcpt_to
        found = getaddresses([self.original.to]) if self.original.to else []
        return tuple(address for _, address in found if "@" in address)


def parse_arf(mail: bytes | Message) -> FeedbackReport:
    """ReportError when the mail is not a feedback report."""
    parts = parts_around(load(mail), ARF_TYPES)
    if parts is None:
        raise ReportError("no message/feedback-report part")
    report = next((p for p in parts if p.get_content_type() == "message/feedback-report"), None)
    if report is None:
        raise ReportError("multipart/report without a message/feedback-report part")
    blocks = header_blocks(report)
    if not blocks:
        raise ReportError("empty message/feedback-report part")
    block = blocks[0]
    original = original_of(parts)
    mail_from = _address_or_none(field(block, "Original-Mail-From"))
    if mail_from and not original.return_path:
        original = replace(original, return_path=mail_from)
    feedback_type = (field(block, "Feedback-Type") or "").lower()
    if not feedback_type:
        raise ReportError("feedback report without a Feedback-Type")
    return FeedbackReport(
        feedback_type=feedback_type,
        user_agent=field(block, "User-Agent"),
        original_rcpt_to=tuple(_address(v) for v in fields(block, "Original-Rcpt-To")),
        original_mail_from=mail_from,
        reporting_mta=typed_value(field(block, "Reporting-MTA")),
        source_ip=field(block, "Source-IP"),
        arrival_date=field(block, "Arrival-Date") or field(block, "Received-Date"),
        original=original,
    )


def _address(value: str) -> str:
    return value.strip().strip("<>").strip()


def _address_or_none(value: str | None) -> str | None:
    return (_address(value) or None) if value is not None else None
