"""Classification of aiosmtplib results into delivered / deferred / bounced."""

from __future__ import annotations

import pytest
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPConnectTimeoutError,
    SMTPDataError,
    SMTPNotSupported,
    SMTPReadTimeoutError,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponse,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)

from services.sender.outcome import Outcome, classify_exception, classify_success, retry_delay


def refused(*codes: int) -> SMTPRecipientsRefused:
    return SMTPRecipientsRefused(
        [SMTPRecipientRefused(code, f"no {n}", f"r{n}@x.test") for n, code in enumerate(codes)]
    )


async def test_all_recipients_permanently_refused_bounces_with_first_code() -> None:
    outcome = classify_exception(refused(550, 553))
    assert outcome == Outcome(
        "bounced", 550, "550 no 0", {"r0@x.test": "550 no 0", "r1@x.test": "553 no 1"}
    )


async def test_any_transient_refusal_defers() -> None:
    outcome = classify_exception(refused(550, 452))
    assert (outcome.kind, outcome.code, outcome.response) == ("deferred", 452, "452 no 1")
    assert set(outcome.refused) == {"r0@x.test", "r1@x.test"}


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (SMTPDataError(550, "5.7.1 rejected"), "bounced", 550),
        (SMTPDataError(451, "4.3.0 later"), "deferred", 451),
        (SMTPSenderRefused(553, "not yours", "a@b.c"), "bounced", 553),
        (SMTPSenderRefused(421, "busy", "a@b.c"), "deferred", 421),
        # our session, not the message: a bad password must not bounce every mail
        (SMTPAuthenticationError(535, "bad credentials"), "deferred", 535),
    ],
)
async def test_response_errors(exc: BaseException, kind: str, code: int) -> None:
    outcome = classify_exception(exc)
    assert (outcome.kind, outcome.code) == (kind, code)
    assert outcome.response.startswith(str(code))


@pytest.mark.parametrize(
    "exc",
    [
        SMTPServerDisconnected("gone"),
        SMTPConnectError("refused"),
        SMTPConnectTimeoutError("slow"),
        SMTPReadTimeoutError("slow"),
        SMTPNotSupported("no STARTTLS"),
        ConnectionResetError(104, "reset"),
        OSError("no route"),
        TimeoutError(),
    ],
)
async def test_connection_failures_defer_without_code(exc: BaseException) -> None:
    outcome = classify_exception(exc)
    assert (outcome.kind, outcome.code, outcome.refused) == ("deferred", None, {})
    assert type(exc).__name__ in outcome.response


async def test_other_exceptions_are_not_classified() -> None:
    with pytest.raises(TypeError):
        classify_exception(KeyError("bug"))


async def test_success_records_partial_refusals() -> None:
    outcome = classify_success({"r@x.test": SMTPResponse(550, "5.1.1 unknown")}, "OK queued")
    assert outcome == Outcome("delivered", 250, "OK queued", {"r@x.test": "550 5.1.1 unknown"})
    assert classify_success({}, "OK").refused == {}


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 30.0), (2, 60.0), (3, 120.0), (7, 1920.0), (8, 3600.0)]
)
async def test_retry_delay_doubles_up_to_the_cap(attempt: int, expected: float) -> None:
    assert retry_delay(attempt, 30.0, 3600.0) == expected


async def test_retry_delay_edges() -> None:
    assert retry_delay(5000, 30.0, 3600.0) == 3600.0  # no overflow
    assert retry_delay(3, 0.2, 1.0) == 0.8
    with pytest.raises(ValueError):
        retry_delay(0, 30.0, 3600.0)
