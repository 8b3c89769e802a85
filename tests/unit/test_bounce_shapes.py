"""Bounce shapes beyond the standard DSN: a delivery-status part in a multipart/report
without report-type or in a multipart/mixed; and mails that are not bounces although
some look like one (challenge/response, sender whitelists, auto-replies)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.feedback.logic import Inbound, Known, analyse, decide
from shared.events import Bounced, FeedbackUnmatched

POSTFIX = Path(__file__).parents[1] / "fixtures" / "feedback" / "postfix_hard_5_1_1.eml"
DOMAINS = {"bounce_domain": "bounces.jetpost.test", "mail_domain": "jetpost.test"}
MID = "7f3c9a1e52b84d0e9c6a2b1f0d8e4a57"
VERP = (f"bounces+{MID}@bounces.jetpost.test",)
REPORT = b"Content-Type: multipart/report; report-type=delivery-status;"


def events(data: bytes) -> list[Bounced | FeedbackUnmatched]:
    mail = Inbound("", VERP, data)
    found = decide(analyse(mail, **DOMAINS), mail, Known(MID, None, ("nobody@example.net",)))
    return [e for e, _ in found if isinstance(e, Bounced | FeedbackUnmatched)]


@pytest.mark.parametrize(
    "container",
    [b"Content-Type: multipart/report;", b"Content-Type: multipart/mixed;",
     b"Content-Type: multipart/mixed; report-type=delivery-status;"],
)  # fmt: skip
def test_delivery_status_part_in_any_container(container: bytes) -> None:
    data = POSTFIX.read_bytes()
    assert REPORT in data
    (bounce,) = events(data.replace(REPORT, container))
    assert isinstance(bounce, Bounced)
    assert (bounce.recipients, bounce.kind, bounce.reason) == (
        ("nobody@example.net",), "hard", "user_unknown",
    )  # fmt: skip


def with_headers(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Subject: Undelivered Mail Returned to Sender",
         b"Subject: Please confirm your message (challenge)"),
        (b"Auto-Submitted: auto-replied", b"Auto-Submitted: auto-replied\nX-Boxbe-Id: 12345"),
        (b"Auto-Submitted: auto-replied", b"X-Delivery-Agent: TMDA/1.1.12 (Macallan)"),
        (b"Subject: Undelivered Mail Returned to Sender",
         b"Subject: Your message awaits approval: sender whitelist"),
        (b"Subject: Undelivered Mail Returned to Sender", b"Subject: Out of Office: back Monday"),
        (b"Auto-Submitted: auto-replied", b"X-Autoreply: yes"),
        (b"Auto-Submitted: auto-replied", b"Precedence: auto_reply"),
    ],
)  # fmt: skip
def test_challenges_and_auto_replies_shaped_like_dsns_are_not_bounces(
    old: bytes, new: bytes
) -> None:
    (event,) = events(with_headers(POSTFIX.read_bytes(), old, new))
    assert isinstance(event, FeedbackUnmatched) and event.reason.startswith("not a bounce")


def test_a_personal_auto_reply_is_not_a_bounce() -> None:
    reply = (
        b"From: Fred <fred@example.net>\nTo: bounces@jetpost.test\n"
        b"Auto-Submitted: auto-replied\nSubject: Re: Welcome\n\n"
        b"I no longer read mail at nobody@example.net, write to fred@example.org.\n"
    )
    (event,) = events(reply)
    assert isinstance(event, FeedbackUnmatched) and "auto-reply" in event.reason


def test_a_dsn_auto_submitted_by_the_mailer_is_still_a_bounce() -> None:
    (bounce,) = events(POSTFIX.read_bytes())  # Postfix sets Auto-Submitted: auto-replied
    assert isinstance(bounce, Bounced)


def test_a_feedback_report_without_report_type_is_a_complaint() -> None:
    arf = (POSTFIX.parent / "arf_abuse.eml").read_bytes()
    marker = b"report-type=feedback-report"
    assert marker in arf
    mail = Inbound("", ("fbl@jetpost.test",), arf.replace(marker, b"x-note=none"))
    analysis = analyse(mail, **DOMAINS)
    assert analysis.kind == "arf" and analysis.arf is not None and analysis.problem is None
