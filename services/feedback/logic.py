"""From one mail received by the feedback receiver to the events it stands for. Pure:
the receiver does the reading (is the message in the log?) and the appending.

Every event id is derived from the mail's hash, so a report delivered twice (the
sending MTA retries when our 250 got lost) yields the same events, which the stream
(within its duplicate window) or the receiver (past it) stores once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from services.feedback.arf import FeedbackReport, parse_arf
from services.feedback.classify import classify
from services.feedback.dsn import DeliveryReport, parse_dsn
from services.feedback.matching import Match, match_message
from services.feedback.parts import Original, ReportError, load, report_type
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
    kind = KINDS.get(found, "unknown")
    dsn, arf, problem, original = None, None, None, Original()
    try:
        if kind == "dsn":
            dsn = parse_dsn(msg)
            original = dsn.original
        elif kind == "arf":
            arf = parse_arf(msg)
            original = arf.original
        else:
            problem = "not a delivery-status or feedback-report multipart/report" + (
                f" (report-type={found})" if found else ""
            )
    except ReportError as exc:
        problem = str(exc)
    match = match_message(
        mail.rcpt_tos, original, bounce_domain=bounce_domain, mail_domain=mail_domain
    )
    return Analysis(kind, match, dsn, arf, problem)


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
        return bounces(analysis.dsn, known, mail.fingerprint)
    if analysis.arf is not None:
        return complaints(analysis.arf, known, mail.fingerprint)
    return [unmatched(mail, analysis.kind, "neither a DSN nor an ARF report")]


def dedup_n(fingerprint: str, index: int) -> int:
    """The append's n for the index-th event of a report: from the report's hash, and
    above 2**48, so it never meets the small attempt numbers the sender uses."""
    digest = hashlib.sha256(f"{fingerprint}:{index}".encode()).hexdigest()
    return (1 << 48) + int(digest[:12], 16)


def bounces(report: DeliveryReport, known: Known, fingerprint: str) -> list[tuple[Event, int]]:
    """One `bounced` per failed or delayed recipient."""
    events: list[tuple[Event, int]] = []
    for index, result in enumerate(report.results):
        kind = classify(result)
        if kind is None:
            continue
        n = dedup_n(fingerprint, index)
        bounce = Bounced(
            event_id=event_id_for(known.message_id, "bounced", n),
            message_id=known.message_id,
            correlation_id=known.correlation_id,
            kind=kind,
            smtp_code=result.smtp_code,
            status=result.status,
            response=result.diagnostic_code or "",
            recipients=(result.final_recipient,),
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
