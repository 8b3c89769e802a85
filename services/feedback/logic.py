"""From one mail received by the feedback receiver to the events it stands for. Pure:
the receiver does the reading (is the message in the log?) and the appending.

Every event id is derived from the mail's hash, so a report delivered twice (the
sending MTA retries when our 250 got lost) yields the same events, which the stream
(within its duplicate window) or the receiver (past it) stores once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from email.message import Message
from functools import cached_property
from typing import Literal

from services.feedback.arf import ARF_TYPES, FeedbackReport, parse_arf
from services.feedback.autoreply import autoreply_reason
from services.feedback.classify import verdict
from services.feedback.dsn import DeliveryReport, RecipientResult, parse_dsn
from services.feedback.matching import Match, match_message
from services.feedback.parts import Original, ReportError, load, parts_around, report_type
from services.feedback.plaintext import parse_plain, quoted_original
from shared.events import Bounced, Complained, Event, FeedbackUnmatched, event_id_for

EXCERPT_BYTES = 4096
UNMATCHED_PREFIX = "fb-"
ReportKind = Literal["dsn", "arf", "unknown"]
KINDS: dict[str | None, ReportKind] = {"delivery-status": "dsn", "feedback-report": "arf"}


@dataclass(frozen=True)
class Inbound:
    """One mail as the receiver got it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    @cached_property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Analysis:
    kind: ReportKind
    match: Match | None = None
    dsn: DeliveryReport | None = None
    arf: FeedbackReport | None = None
    problem: str | None = None  # why it cannot become a bounce or a complaint


@dataclass(frozen=True)
class Known:
    """What the log says about the matched message."""

    message_id: str
    correlation_id: str | None = None
    recipients: tuple[str, ...] = ()


def analyse(mail: Inbound, *, bounce_domain: str, mail_domain: str) -> Analysis:
    msg = load(mail.data)
    found = report_type(msg)
    kind: ReportKind = KINDS.get(found, "unknown")
    if kind == "unknown" and parts_around(msg, ARF_TYPES) is not None:
        kind = "arf"  # a feedback-report part in a report without (or with another) type
    dsn, arf, problem, original = None, None, None, Original()
    try:
        if (why := autoreply_reason(msg)) is not None:
            problem = f"not a bounce: {why}"
        elif kind == "arf":
            arf = parse_arf(msg)
            original = arf.original
        else:
            dsn = _delivery_report(msg)
            kind, original = "dsn", dsn.original
    except ReportError as exc:
        problem = str(exc)
        original = quoted_original(msg)
    match = match_message(
        mail.rcpt_tos, original, bounce_domain=bounce_domain, mail_domain=mail_domain
    )
    return Analysis(kind, match, dsn, arf, problem)


def _delivery_report(msg: Message) -> DeliveryReport:
    """A DSN wherever its status part sits; else a plain-text bounce (flufl.bounce).
    A DSN whose recipient fields name no usable address borrows the failed address
    its text names, when the text names just one."""
    try:
        report = parse_dsn(msg)
    except ReportError:
        results = parse_plain(msg)
        if not results:
            raise ReportError(
                "neither a delivery-status report nor a bounce notice naming a failed address"
            ) from None
        return DeliveryReport(None, results, quoted_original(msg))
    if all(r.candidates for r in report.results):
        return report
    text_addresses = [r.recipient for r in parse_plain(msg) if r.recipient]
    if len(set(text_addresses)) != 1:
        return report
    fixed = tuple(r if r.candidates else replace(r, candidates=(text_addresses[0],))
                  for r in report.results)  # fmt: skip
    return replace(report, results=fixed)


def decide(analysis: Analysis, mail: Inbound, known: Known | None) -> list[tuple[Event, int]]:
    """The events to append, each with its dedup n; [] when there is nothing to record
    (a DSN that only reports deliveries)."""
    match, kind = analysis.match, analysis.kind
    if analysis.problem is not None:
        about = f" (addressed to message {match.message_id})" if match else ""
        return [unmatched(mail, kind, analysis.problem + about)]
    if match is None:
        return [unmatched(mail, kind, "no VERP recipient, X-Jetpost-Message-Id or our Message-ID")]
    if known is None:
        return [unmatched(mail, kind, f"message {match.message_id} ({match.via}) not in the log")]
    if analysis.dsn is not None:
        found = bounces(analysis.dsn, known, mail.fingerprint)
        failed = [r for r in analysis.dsn.results if verdict(r) is not None]
        if failed and not found:
            return [
                unmatched(
                    mail,
                    kind,
                    "the report names no valid recipient address, nor"
                    f" does message {known.message_id} have a single recipient",
                )
            ]
        return found
    if analysis.arf is not None:
        return complaints(analysis.arf, known, mail.fingerprint)
    return [unmatched(mail, analysis.kind, "neither a DSN nor an ARF report")]


def dedup_n(fingerprint: str, index: int) -> int:
    """The append's n for the index-th event of a report: from the report's hash, and
    above 2**48, so it never meets the small attempt numbers the sender uses."""
    digest = hashlib.sha256(f"{fingerprint}:{index}".encode()).hexdigest()
    return (1 << 48) + int(digest[:12], 16)


def recipients_for(result: RecipientResult, known: Known) -> tuple[str, ...]:
    """Who bounced: of the report's valid addresses, the one the message was sent to;
    when the log names no recipients to choose by, every address the report gives
    (Original- and Final-Recipient differ after forwarding); with none, the message's
    only recipient; else () (never a non-address)."""
    ours = {r.lower() for r in known.recipients}
    for candidate in result.candidates:
        if candidate.lower() in ours:
            return (candidate,)
    if result.candidates:
        return result.candidates if not known.recipients else result.candidates[:1]
    return known.recipients if len(known.recipients) == 1 else ()


def bounces(report: DeliveryReport, known: Known, fingerprint: str) -> list[tuple[Event, int]]:
    """One `bounced` per failed or delayed recipient, with the evidence it rests on."""
    events: list[tuple[Event, int]] = []
    for index, result in enumerate(report.results):
        judged = verdict(result)
        recipients = recipients_for(result, known)
        if judged is None or not recipients:
            continue
        n = dedup_n(fingerprint, index)
        bounce = Bounced(
            event_id=event_id_for(known.message_id, "bounced", n),
            message_id=known.message_id,
            correlation_id=known.correlation_id,
            kind=judged.kind,
            reason=judged.reason,
            smtp_code=result.smtp_code,
            status=result.status,
            action=result.action,
            response=result.diagnostic_code or "",
            evidence=result.evidence,
            recipients=recipients,
            source="dsn",
        )
        events.append((bounce, n))
    return events


def complaints(report: FeedbackReport, known: Known, fingerprint: str) -> list[tuple[Event, int]]:
    """One `complained` per complaining recipient. Providers often redact who that is;
    then it is the message's only recipient if it had one, else left empty."""
    recipients = report.recipients or (known.recipients if len(known.recipients) == 1 else ("",))
    events: list[tuple[Event, int]] = []
    for index, recipient in enumerate(recipients):
        n = dedup_n(fingerprint, index)
        complaint = Complained(
            event_id=event_id_for(known.message_id, "complained", n),
            message_id=known.message_id,
            correlation_id=known.correlation_id,
            recipient=recipient,
            feedback_type=report.feedback_type,
            source="arf",
        )
        events.append((complaint, n))
    return events


def unmatched(mail: Inbound, kind: ReportKind, reason: str) -> tuple[Event, int]:
    aggregate = UNMATCHED_PREFIX + mail.fingerprint[:32]
    event = FeedbackUnmatched(
        event_id=event_id_for(aggregate, "feedback_unmatched"),
        message_id=aggregate,
        kind=kind,
        reason=reason,
        raw_excerpt=mail.data[:EXCERPT_BYTES].decode("utf-8", "replace"),
        mail_from=mail.mail_from,
        rcpt_tos=mail.rcpt_tos,
    )
    return event, 1
