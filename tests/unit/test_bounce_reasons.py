"""The one bounce classifier: (status, SMTP code, diagnostic, action) -> reason and
hard/soft, most specific evidence first."""

from __future__ import annotations

import pytest

from shared.bounce_reasons import best_status, classify


@pytest.mark.parametrize(
    ("status", "code", "diagnostic", "action", "reason", "kind"),
    [
        ("5.1.1", 550, "550 5.1.1 user unknown", "failed", "user_unknown", "hard"),
        ("5.1.2", None, "", "failed", "host_unknown", "hard"),
        ("5.1.10", 550, "", "failed", "not_accept", "hard"),
        ("5.2.2", 552, "", "failed", "mailbox_full", "soft"),
        ("5.3.4", 552, "", "failed", "message_too_large", "soft"),
        ("5.4.7", None, "", "failed", "expired", "soft"),
        ("5.7.26", 550, "DMARC", "failed", "policy", "soft"),
        # generic codes: the words decide
        ("5.0.0", 550, "550 Mailbox quota exceeded", "failed", "mailbox_full", "soft"),
        ("5.0.0", 554, "554 rejected: listed at zen.spamhaus.org", "failed", "spam_blocked",
         "soft"),
        ("5.7.1", 550, "550 5.7.1 No such user here", "failed", "user_unknown", "hard"),
        ("5.7.1", 550, "550 5.7.1 Message rejected by policy", "failed", "policy", "soft"),
        # a specific code in the text beats the generic Status
        ("5.0.0", 550, "550 5.1.1 <a@example.com>... User Unknown", "failed", "user_unknown",
         "hard"),
        ("5.0.0", None, "smtp; 552 5.2.2 over quota", "failed", "mailbox_full", "soft"),
        # temporary: always soft
        ("4.1.1", 450, "450 4.1.1 user unknown (try later)", "failed", "user_unknown", "soft"),
        ("5.1.1", 550, "", "delayed", "user_unknown", "soft"),
        (None, 421, "421 too many connections, slow down", None, "rate_limited", "soft"),
        (None, 550, "550 Requested action not taken: mailbox unavailable", None, "user_unknown",
         "hard"),
        (None, None, "Sorry, I couldn't find any host named example.invalid. (#5.1.2)", "failed",
         "host_unknown", "hard"),
        (None, None, "This account has been disabled or discontinued [#102].", "failed",
         "user_unknown", "hard"),
        (None, None, "account is temporarily suspended", "failed", "suspend", "soft"),
        (None, None, "554 Too many hops (mail loop)", "failed", "system_error", "soft"),
        # a permanent failure that names no reason: hard, as providers count it
        ("5.0.0", None, "", "failed", "other", "hard"),
        (None, None, "", "delayed", "other", "soft"),
    ],
)  # fmt: skip
def test_classify(
    status: str | None, code: int | None, diagnostic: str, action: str | None, reason: str,
    kind: str,
) -> None:  # fmt: skip
    verdict = classify(status, code, diagnostic, action)
    assert (verdict.reason, verdict.kind) == (reason, kind)


def test_best_status_prefers_a_specific_code_of_the_same_class() -> None:
    assert best_status("5.0.0", "550 5.1.1 unknown") == "5.1.1"
    assert best_status("5.1.1", "550 5.2.2 full") == "5.1.1"
    assert best_status("5.0.0", "450 4.2.2 full") == "5.0.0"
    assert best_status(None, "qmail said (#5.1.1)") == "5.1.1"
    assert best_status(None, "no code here") is None


@pytest.mark.parametrize(
    ("status", "diagnostic", "reason"),
    [
        ("5.1.8", "550 5.1.8 <us@jetpost.test>: Sender address rejected: Domain not found",
         "policy"),
        ("5.1.1", "SMTP error from remote mail server after MAIL FROM:<us@jetpost.test>: 550",
         "policy"),
        ("5.5.0", "500 5.5.0 Command unrecognized", "system_error"),
        ("5.0.0", "X-Unix; Command died with status 127", "system_error"),
    ],
)  # fmt: skip
def test_refusals_of_the_sender_or_the_protocol_are_soft(
    status: str, diagnostic: str, reason: str
) -> None:
    verdict = classify(status, None, diagnostic, "failed")
    assert (verdict.reason, verdict.kind) == (reason, "soft")
