"""What one SMTP attempt came to, decided from aiosmtplib's results alone.

Kept pure so the delivery policy (what is retried, what bounces) is testable without
a server: the sender records Delivered/Deferred/Bounced from an `Outcome` and never
inspects an exception itself.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Literal

from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectResponseError,
    SMTPException,
    SMTPHeloError,
    SMTPRecipientsRefused,
    SMTPResponse,
    SMTPResponseException,
)
from aiosmtplib.errors import SMTPConnectError, SMTPServerDisconnected, SMTPTimeoutError

# Everything a send can raise because of the server or the network (not our code).
SEND_ERRORS: tuple[type[BaseException], ...] = (SMTPException, OSError, asyncio.TimeoutError)

# 5xx refusals of our session rather than of this message: a wrong password or a
# misconfigured relay must not hard-bounce every recipient, so these are deferred.
_SESSION_REFUSALS = (SMTPAuthenticationError, SMTPHeloError, SMTPConnectResponseError)


# Failures of the provider (the route), not of the message: they count against its
# circuit breaker and send the mail on to the next provider (services/sender/routing.py).
_CONNECTION_FAILURES = (
    SMTPConnectError,
    SMTPServerDisconnected,
    SMTPTimeoutError,
    OSError,
    asyncio.TimeoutError,
    *_SESSION_REFUSALS,
)


@dataclass(frozen=True)
class Outcome:
    kind: Literal["delivered", "deferred", "bounced"]
    code: int | None
    response: str
    # Recipients the server refused, as "code message"; on delivery, the partial ones.
    refused: dict[str, str] = field(default_factory=dict)
    # True: the provider failed (refused connection, timeout, TLS, 421, a drop), not the
    # message. Recipient-level answers (550 user unknown, 452 full) leave it False.
    connection: bool = False
    # The connection was lost after the message went out (during or after DATA): the
    # server may have it. Never retried or failed over inside the attempt (a second
    # copy would be a duplicate); the next attempt, if any, is in the log.
    uncertain: bool = False
    provider: str = ""  # who took the attempt (set by the router)
    host: str | None = None  # the SMTP host that answered (the MX host for mx://)


def _permanent(code: int) -> bool:
    return 500 <= code <= 599


def classify_exception(exc: BaseException) -> Outcome:
    """The outcome of a send that raised; TypeError for an exception not in SEND_ERRORS."""
    if isinstance(exc, SMTPRecipientsRefused):
        refused = {err.recipient: f"{err.code} {err.message}" for err in exc.recipients}
        if not exc.recipients:
            return Outcome("deferred", None, "all recipients refused", refused)
        transient = [err for err in exc.recipients if not _permanent(err.code)]
        first = transient[0] if transient else exc.recipients[0]
        kind: Literal["deferred", "bounced"] = "deferred" if transient else "bounced"
        return Outcome(kind, first.code, f"{first.code} {first.message}", refused)
    if isinstance(exc, SMTPResponseException):
        response = f"{exc.code} {exc.message}"
        connection = exc.code == 421 or isinstance(exc, _CONNECTION_FAILURES)
        if _permanent(exc.code) and not isinstance(exc, _SESSION_REFUSALS):
            return Outcome("bounced", exc.code, response)
        return Outcome("deferred", exc.code, response, connection=connection)
    if isinstance(exc, SEND_ERRORS):
        detail = str(exc)
        name = type(exc).__name__
        response = f"{name}: {detail}" if detail else name
        return Outcome("deferred", None, response, connection=isinstance(exc, _CONNECTION_FAILURES))
    raise TypeError(f"not a delivery failure: {exc!r}")


def classify_success(errors: dict[str, SMTPResponse], response: str) -> Outcome:
    """The server accepted DATA (250) for at least one recipient; `errors` are the rest."""
    refused = {recipient: str(reply) for recipient, reply in errors.items()}
    return Outcome("delivered", 250, response, refused)


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after failed attempt `attempt` (from 1): min(base * 2**(n-1), cap)."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    try:
        return min(math.ldexp(base, attempt - 1), cap)
    except OverflowError:
        return cap
