"""RFC 3464 DSNs read into per-recipient results, and their hard/soft classification."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.feedback.classify import kind_of as classify
from services.feedback.dsn import RecipientResult, parse_dsn, parse_status, smtp_code
from services.feedback.parts import ReportError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "feedback"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_postfix_hard_bounce_with_returned_headers() -> None:
    report = parse_dsn(fixture("postfix_hard_5_1_1.eml"))
    assert report.reporting_mta == "mx1.example.net"
    (result,) = report.results
    assert result.final_recipient == "nobody@example.net"
    assert result.original_recipient == "nobody@example.net"
    assert (result.action, result.status, result.smtp_code) == ("failed", "5.1.1", 550)
    assert result.remote_mta == "mail.example.net"
    assert result.diagnostic_code == (
        "550 5.1.1 <nobody@example.net>: Recipient address rejected: "
        "User unknown in virtual mailbox table"
    )  # unfolded, without its `smtp;` type
    assert report.original.message_id == "<7f3c9a1e52b84d0e9c6a2b1f0d8e4a57@jetpost.test>"
    assert report.original.jetpost_id == "7f3c9a1e52b84d0e9c6a2b1f0d8e4a57"
    assert report.original.return_path == (
        "<bounces+7f3c9a1e52b84d0e9c6a2b1f0d8e4a57@jetpost.test>"
    )
    assert classify(result) == "hard"


def test_delayed_dsn_is_soft() -> None:
    report = parse_dsn(fixture("sendmail_delayed_4_2_2.eml"))
    (result,) = report.results
    assert (result.final_recipient, result.action, result.status) == (
        "dave@example.org", "delayed", "4.2.2",
    )  # fmt: skip
    assert (result.diagnostic_code, result.smtp_code) == ("452 4.2.2 Mailbox full", 452)
    assert result.remote_mta == "mailstore.example.org"
    assert report.original.jetpost_id == "b41d07c2e9a34f6f8a5e3d2c1b0a9f88"
    assert classify(result) == "soft"


def test_multi_recipient_dsn_with_the_whole_message_returned() -> None:
    report = parse_dsn(fixture("multi_recipient.eml"))
    delivered, failed = report.results
    assert (delivered.final_recipient, delivered.action, delivered.status) == (
        "erin@example.com", "delivered", "2.0.0",
    )  # fmt: skip
    assert (failed.final_recipient, failed.action, failed.status, failed.smtp_code) == (
        "frank@example.com", "failed", "5.1.10", 550,
    )  # fmt: skip
    assert [classify(r) for r in report.results] == [None, "hard"]
    assert report.original.message_id == "<c0ffee00deadbeef0123456789abcdef@jetpost.test>"


@pytest.mark.parametrize("name", ["garbage.eml", "arf_abuse.eml"])
def test_other_mail_is_not_a_dsn(name: str) -> None:
    with pytest.raises(ReportError):
        parse_dsn(fixture(name))


def test_dsn_without_recipient_fields_is_refused() -> None:
    broken = fixture("postfix_hard_5_1_1.eml").replace(b"Final-Recipient:", b"X-Gone:")
    broken = broken.replace(b"Original-Recipient:", b"X-Gone-Too:")
    with pytest.raises(ReportError, match="names no recipient"):
        parse_dsn(broken)


@pytest.mark.parametrize("final", [b"system;<>", b"LOCAL;<f.b>", b"rfc822;", b"x400; /C=US/S=Doe/"])
def test_unusable_final_recipient_falls_back_to_original_recipient(final: bytes) -> None:
    data = fixture("postfix_hard_5_1_1.eml").replace(
        b"Final-Recipient: rfc822; nobody@example.net", b"Final-Recipient: " + final
    )
    assert data != fixture("postfix_hard_5_1_1.eml")
    (result,) = parse_dsn(data).results
    assert result.candidates == ("nobody@example.net",)


def test_mail_store_final_recipient_ranks_after_original_recipient() -> None:
    data = fixture("postfix_hard_5_1_1.eml").replace(
        b"Final-Recipient: rfc822; nobody@example.net",
        b"Final-Recipient: LOCAL; u123@store7.mail.internal",
    )
    (result,) = parse_dsn(data).results
    assert result.candidates == ("nobody@example.net", "u123@store7.mail.internal")
    assert result.recipient == "nobody@example.net"


def test_missing_status_and_action_come_from_the_diagnostic() -> None:
    data = fixture("postfix_hard_5_1_1.eml").replace(b"Status: 5.1.1\n", b"")
    data = data.replace(b"Action: failed\n", b"")
    (result,) = parse_dsn(data).results
    assert (result.action, result.status) == ("failed", "5.1.1")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5.1.1", "5.1.1"), ("4.4.7 (delivery time expired)", "4.4.7"), ("5.7.26", "5.7.26"),
     ("", None), (None, None), ("failed", None)],
)  # fmt: skip
def test_parse_status(value: str | None, expected: str | None) -> None:
    assert parse_status(value) == expected


@pytest.mark.parametrize(
    ("diagnostic", "expected"),
    [("550 5.1.1 <a@b>: unknown", 550), ("550-5.7.1 [1.2.3.4] blocked", 550),
     ("452", 452), ("host mx.example.net[192.0.2.1] said: 554 5.7.1 rejected", 554),
     ("delivered via mailbox", None), ("", None), (None, None), ("5500 no", None)],
)  # fmt: skip
def test_smtp_code(diagnostic: str | None, expected: int | None) -> None:
    assert smtp_code(diagnostic) == expected


def result(action: str, status: str | None, diagnostic: str | None = None) -> RecipientResult:
    return RecipientResult("x@example.com", action, status, diagnostic)


@pytest.mark.parametrize(
    ("action", "status", "diagnostic", "kind"),
    [
        ("failed", "5.1.1", None, "hard"),  # no such user
        ("failed", "5.1.10", None, "hard"),
        ("failed", "5.4.4", None, "hard"),  # no route to the domain
        ("failed", "5.2.1", None, "hard"),  # mailbox disabled
        ("failed", "5.2.2", None, "soft"),  # mailbox full
        ("failed", "5.3.4", None, "soft"),  # message too big
        ("failed", "5.7.1", None, "soft"),  # policy: about us, not the address
        ("failed", "5.7.26", None, "soft"),  # DMARC
        ("failed", "4.4.7", None, "soft"),  # the MTA gave up on a temporary condition
        ("delayed", "4.2.2", None, "soft"),
        ("delayed", "5.1.1", None, "soft"),  # still being tried
        ("failed", None, "421 try later", "soft"),
        ("failed", None, "550 no such user", "hard"),
        ("failed", None, None, "hard"),  # a permanent failure that names no reason
        ("delivered", "2.0.0", None, None),
        ("relayed", "2.0.0", None, None),
        ("expanded", "2.0.0", None, None),
    ],
)
def test_classify(action: str, status: str | None, diagnostic: str | None, kind: str) -> None:
    assert classify(result(action, status, diagnostic)) == kind
