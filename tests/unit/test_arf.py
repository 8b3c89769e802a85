"""RFC 5965 feedback reports read into who complained, how, about which message."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.feedback.arf import parse_arf
from services.feedback.parts import ReportError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "feedback"
ARF = (FIXTURES / "arf_abuse.eml").read_bytes()


def test_abuse_report_with_the_original_message() -> None:
    report = parse_arf(ARF)
    assert report.feedback_type == "abuse"
    assert report.user_agent == "ExampleMail-Feedback/2.0"
    assert report.original_rcpt_to == ("carol@mail.example.org",)
    assert report.recipients == ("carol@mail.example.org",)
    assert report.original_mail_from == "bounces+9a8b7c6d5e4f40312a1b0c9d8e7f6a5b@jetpost.test"
    assert report.reporting_mta == "fbl.mail.example.org"
    assert report.source_ip == "198.51.100.7"
    assert report.arrival_date == "Thu, 16 May 2024 09:58:40 +0000"
    assert report.original.message_id == "<9a8b7c6d5e4f40312a1b0c9d8e7f6a5b@jetpost.test>"
    assert report.original.jetpost_id == "9a8b7c6d5e4f40312a1b0c9d8e7f6a5b"


def test_feedback_type_is_lower_cased() -> None:
    assert parse_arf(ARF.replace(b"Feedback-Type: abuse", b"Feedback-Type: Fraud")).feedback_type \
        == "fraud"  # fmt: skip


def test_redacted_recipient_falls_back_to_the_returned_to() -> None:
    redacted = ARF.replace(b"Original-Rcpt-To: <carol@mail.example.org>\n", b"")
    report = parse_arf(redacted)
    assert report.original_rcpt_to == ()
    assert report.recipients == ("carol@mail.example.org",)


def test_several_original_recipients() -> None:
    two = ARF.replace(
        b"Original-Rcpt-To: <carol@mail.example.org>\n",
        b"Original-Rcpt-To: <carol@mail.example.org>\nOriginal-Rcpt-To: dan@mail.example.org\n",
    )
    assert parse_arf(two).recipients == ("carol@mail.example.org", "dan@mail.example.org")


def test_original_mail_from_stands_in_for_a_missing_return_path() -> None:
    headers_only = ARF.replace(
        b"Return-Path: <bounces+9a8b7c6d5e4f40312a1b0c9d8e7f6a5b@jetpost.test>\n", b""
    )
    assert parse_arf(headers_only).original.return_path == (
        "bounces+9a8b7c6d5e4f40312a1b0c9d8e7f6a5b@jetpost.test"
    )


def test_headers_only_returned_part() -> None:
    text_headers = ARF.replace(b"message/rfc822", b"text/rfc822-headers")
    report = parse_arf(text_headers)
    assert report.original.jetpost_id == "9a8b7c6d5e4f40312a1b0c9d8e7f6a5b"


def test_report_without_feedback_type_is_refused() -> None:
    with pytest.raises(ReportError, match="Feedback-Type"):
        parse_arf(ARF.replace(b"Feedback-Type: abuse\n", b""))


@pytest.mark.parametrize(
    "name", ["garbage.eml", "postfix_hard_5_1_1.eml", "sendmail_delayed_4_2_2.eml"]
)
def test_other_mail_is_not_a_feedback_report(name: str) -> None:
    with pytest.raises(ReportError):
        parse_arf((FIXTURES / name).read_bytes())
