"""Which message a report is about, and the events a received report stands for."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.feedback.logic import EXCERPT_BYTES, Inbound, Known, analyse, decide
from services.feedback.matching import (
    Match,
    from_message_id,
    from_verp,
    match_message,
    verp_address,
)
from services.feedback.parts import Original
from shared.events import Bounced, Complained, Event, FeedbackUnmatched

FIXTURES = Path(__file__).parents[1] / "fixtures" / "feedback"
DOMAINS = {"bounce_domain": "bounces.jetpost.test", "mail_domain": "jetpost.test"}
MID = "7f3c9a1e52b84d0e9c6a2b1f0d8e4a57"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- matching ------------------------------------------------------------------------


def test_verp_round_trip() -> None:
    address = verp_address("abc_DEF-1", "Bounces.Example.com")
    assert address == "bounces+abc_DEF-1@bounces.example.com"
    assert from_verp(address, "bounces.example.com") == "abc_DEF-1"
    assert from_verp(f"<{address.upper().replace('ABC_DEF-1', 'abc_DEF-1')}>",
                     "bounces.example.com") == "abc_DEF-1"  # fmt: skip


def test_verp_address_refuses_what_is_not_a_message_id() -> None:
    with pytest.raises(ValueError):
        verp_address("a.b@c", "example.com")


@pytest.mark.parametrize(
    "address",
    ["bounces+abc@other.example", "noreply@bounces.example.com", "bounce+abc@bounces.example.com",
     "bounces+@bounces.example.com", "bounces+a.b@bounces.example.com", "bounces+abc"],
)  # fmt: skip
def test_not_a_verp_address(address: str) -> None:
    assert from_verp(address, "bounces.example.com") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("<abc@jetpost.test>", "abc"), ("<abc@JetPost.Test> (comment)", "abc"),
     ("abc@jetpost.test", "abc"), ("<abc@other.example>", None), ("<a.b@jetpost.test>", None),
     ("<abc>", None), ("", None), (None, None)],
)  # fmt: skip
def test_message_id_header(value: str | None, expected: str | None) -> None:
    assert from_message_id(value, ["jetpost.test"]) == expected


def test_clues_in_order_of_trust() -> None:
    verp = "bounces+from-verp@bounces.jetpost.test"
    full = Original(message_id="<from-mid@jetpost.test>", jetpost_id="from-header",
                    return_path="<bounces+from-return-path@bounces.jetpost.test>")  # fmt: skip
    assert match_message([verp], full, **DOMAINS) == Match("from-verp", "verp")
    by_header = match_message(["noreply@jetpost.test"], full, **DOMAINS)
    assert by_header == Match("from-header", "header")
    no_header = Original(message_id=full.message_id, return_path=full.return_path)
    assert match_message([], no_header, **DOMAINS) == Match("from-mid", "message-id")
    only_path = Original(return_path=full.return_path)
    assert match_message([], only_path, **DOMAINS) == Match("from-return-path", "verp")
    foreign = Original(message_id="<x@other.example>", jetpost_id="not a valid id")
    assert match_message(["bounces+x@elsewhere.example"], foreign, **DOMAINS) is None


# --- from a received mail to events ------------------------------------------------


def received(name: str, *rcpt_tos: str) -> Inbound:
    return Inbound("", rcpt_tos or ("noreply@jetpost.test",), fixture(name))


def events_for(mail: Inbound, known: Known | None = None) -> list[tuple[Event, int]]:
    analysis = analyse(mail, **DOMAINS)
    if known is None and analysis.match is not None:
        known = Known(analysis.match.message_id, "corr-1", ("nobody@example.net",))
    return decide(analysis, mail, known)


def test_hard_bounce_by_verp_rcpt() -> None:
    mail = received("postfix_hard_5_1_1.eml", f"bounces+{MID}@bounces.jetpost.test")
    assert analyse(mail, **DOMAINS).match == Match(MID, "verp")
    ((bounce, n),) = events_for(mail)
    assert isinstance(bounce, Bounced)
    assert (bounce.message_id, bounce.kind, bounce.status, bounce.smtp_code) == (
        MID, "hard", "5.1.1", 550,
    )  # fmt: skip
    assert (bounce.source, bounce.recipients, bounce.correlation_id) == (
        "dsn", ("nobody@example.net",), "corr-1",
    )  # fmt: skip
    assert bounce.response.startswith("550 5.1.1 <nobody@example.net>: Recipient address")
    assert n >= 1 << 48  # never one of the sender's attempt numbers


def test_the_same_report_gives_the_same_events() -> None:
    first = events_for(received("postfix_hard_5_1_1.eml"))
    again = events_for(received("postfix_hard_5_1_1.eml"))
    assert [(e.event_id, n) for e, n in first] == [(e.event_id, n) for e, n in again]
    other = events_for(received("postfix_hard_5_1_1.eml", "bounces+x@bounces.jetpost.test"))
    assert other[0][0].message_id == "x"


def test_delayed_dsn_is_a_soft_bounce() -> None:
    ((bounce, _),) = events_for(received("sendmail_delayed_4_2_2.eml"))
    assert isinstance(bounce, Bounced)
    assert (bounce.message_id, bounce.kind, bounce.status, bounce.smtp_code) == (
        "b41d07c2e9a34f6f8a5e3d2c1b0a9f88", "soft", "4.2.2", 452,
    )  # fmt: skip


def test_multi_recipient_dsn_bounces_only_the_failed_one() -> None:
    ((bounce, _),) = events_for(received("multi_recipient.eml"))
    assert isinstance(bounce, Bounced)
    assert (bounce.recipients, bounce.kind, bounce.status) == (("frank@example.com",), "hard",
                                                               "5.1.10")  # fmt: skip


def test_dsn_of_deliveries_only_records_nothing() -> None:
    data = fixture("multi_recipient.eml").replace(b"Action: failed", b"Action: relayed")
    assert events_for(Inbound("", ("noreply@jetpost.test",), data)) == []


def test_complaint() -> None:
    ((complaint, _),) = events_for(received("arf_abuse.eml", "fbl@jetpost.test"))
    assert isinstance(complaint, Complained)
    assert (complaint.message_id, complaint.recipient, complaint.feedback_type) == (
        "9a8b7c6d5e4f40312a1b0c9d8e7f6a5b", "carol@mail.example.org", "abuse",
    )  # fmt: skip
    assert complaint.source == "arf"


def test_complaint_with_every_recipient_redacted_uses_the_logged_one() -> None:
    data = fixture("arf_abuse.eml").replace(b"Original-Rcpt-To: <carol@mail.example.org>\n", b"")
    data = data.replace(b"To: carol@mail.example.org\n", b"To: redacted\n")
    mail = Inbound("", ("fbl@jetpost.test",), data)
    ((complaint, _),) = events_for(mail, Known("9a8b7c6d5e4f40312a1b0c9d8e7f6a5b", None,
                                               ("carol@mail.example.org",)))  # fmt: skip
    assert isinstance(complaint, Complained) and complaint.recipient == "carol@mail.example.org"
    ((unknown, _),) = events_for(mail, Known("9a8b7c6d5e4f40312a1b0c9d8e7f6a5b", None,
                                             ("a@example.com", "b@example.com")))  # fmt: skip
    assert isinstance(unknown, Complained) and unknown.recipient == ""


def test_mail_that_is_no_report_is_kept_as_unmatched() -> None:
    mail = Inbound("dave@example.org", ("noreply@jetpost.test",), fixture("garbage.eml"))
    ((event, n),) = events_for(mail)
    assert isinstance(event, FeedbackUnmatched)
    assert event.kind == "unknown" and "not a bounce: an auto-reply" in event.reason
    assert event.message_id == "fb-" + mail.fingerprint[:32] and n == 1
    assert (event.mail_from, event.rcpt_tos) == ("dave@example.org", ("noreply@jetpost.test",))
    assert event.raw_excerpt.startswith("Return-Path: <dave@example.org>")


def test_report_about_no_message_of_ours_is_kept_as_unmatched() -> None:
    data = fixture("postfix_hard_5_1_1.eml").replace(b"jetpost.test", b"elsewhere.example")
    data = data.replace(f"X-Jetpost-Message-Id: {MID}\n".encode(), b"")
    ((event, _),) = events_for(Inbound("", ("postmaster@jetpost.test",), data))
    assert isinstance(event, FeedbackUnmatched) and event.kind == "dsn"
    assert event.reason == "no VERP recipient, X-Jetpost-Message-Id or our Message-ID"


def test_report_about_a_message_the_log_does_not_know() -> None:
    mail = received("arf_abuse.eml")
    analysis = analyse(mail, **DOMAINS)
    ((event, _),) = decide(analysis, mail, None)
    assert isinstance(event, FeedbackUnmatched) and event.kind == "arf"
    assert event.reason == "message 9a8b7c6d5e4f40312a1b0c9d8e7f6a5b (header) not in the log"


def test_broken_report_is_unmatched_and_says_whom_it_was_for() -> None:
    data = fixture("postfix_hard_5_1_1.eml").replace(b"Final-Recipient:", b"X-Gone:")
    data = data.replace(b"Original-Recipient:", b"X-Gone-Too:").replace(b"<nobody@", b"<")
    data = data.replace(b"Diagnostic-Code:", b"X-Diag:")
    ((event, _),) = events_for(Inbound("", (f"bounces+{MID}@bounces.jetpost.test",), data))
    assert isinstance(event, FeedbackUnmatched) and event.kind == "dsn"
    assert event.reason.endswith(f"(addressed to message {MID})")


VERP = (f"bounces+{MID}@bounces.jetpost.test",)


def test_no_bounce_for_a_recipient_that_is_not_an_address() -> None:
    """`system;<>` / `LOCAL;<f.b>` and no other clue: the message's only recipient, or
    with several, unmatched; never a `bounced` for a non-address."""
    data = (
        fixture("postfix_hard_5_1_1.eml")
        .replace(b"Final-Recipient: rfc822; nobody@example.net", b"Final-Recipient: LOCAL;<f.b>")
        .replace(b"Original-Recipient: rfc822;nobody@example.net", b"Original-Recipient: system;<>")
    )
    data = data.replace(b"<nobody@example.net>", b"<f.b>")
    mail = Inbound("", VERP, data)
    analysis = analyse(mail, **DOMAINS)
    ((only, _),) = decide(analysis, mail, Known(MID, None, ("Nobody@Example.net",)))
    assert isinstance(only, Bounced) and only.recipients == ("Nobody@Example.net",)
    ((event, _),) = decide(analysis, mail, Known(MID, None, ("a@example.net", "b@example.net")))
    assert isinstance(event, FeedbackUnmatched)
    assert "names no valid recipient address" in event.reason


def test_final_recipient_of_the_message_wins_over_a_mail_store_address() -> None:
    data = fixture("postfix_hard_5_1_1.eml").replace(
        b"Final-Recipient: rfc822; nobody@example.net",
        b"Final-Recipient: rfc822; u7@store.internal",
    )
    mail = Inbound("", VERP, data)
    known = Known(MID, None, ("nobody@example.net", "other@example.net"))
    ((event, _),) = decide(analyse(mail, **DOMAINS), mail, known)
    assert isinstance(event, Bounced) and event.recipients == ("nobody@example.net",)
    assert (event.kind, event.reason, event.action) == ("hard", "user_unknown", "failed")
    assert "u7@store.internal" in event.evidence


def test_excerpt_is_the_first_4_kb() -> None:
    mail = Inbound("", (), b"Subject: big\n\n" + b"x" * 10_000)
    ((event, _),) = events_for(mail)
    assert isinstance(event, FeedbackUnmatched) and len(event.raw_excerpt) == EXCERPT_BYTES
