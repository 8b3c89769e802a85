"""The SMTP transaction as a span and a latency sample, for whichever provider sends.

jetpost's SMTP providers all end in `aiosmtplib.SMTP.sendmail` (send_message calls it
too), so it is wrapped once per process, as OpenTelemetry's library instrumentations
do: a CLIENT span `smtp sendmail` (host, port, reply code, recipient count) under the
sender's span, `jetpost_smtp_seconds`, and the recipients' domains noted for the
outcome metrics (shared.telemetry.metrics.delivery). The sender itself needs no edit.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Sequence
from typing import Any

import aiosmtplib
from opentelemetry.trace import SpanKind, Status, StatusCode

from shared.telemetry import metrics, tracing

_ORIGINAL = aiosmtplib.SMTP.sendmail


def _reply_code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    if code is None and isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        code = codes[0] if codes else None
    return int(code) if isinstance(code, int) else None


def _result(code: int | None) -> str:
    return f"{code // 100}xx" if code else "error"


@functools.wraps(_ORIGINAL)
async def _sendmail(self: aiosmtplib.SMTP, sender: str, recipients: str | Sequence[str],
                    message: str | bytes, /, **kwargs: Any) -> Any:  # fmt: skip
    rcpts = [recipients] if isinstance(recipients, str) else list(recipients)
    host = str(self.hostname or "")
    scope = metrics.delivery.get()
    if scope is not None:
        scope.domains = sorted({r.rpartition("@")[2].lower() for r in rcpts if "@" in r})
        scope.host = host
    port = int(self.port or 0)
    attributes: dict[str, str | int] = {
        "server.address": host, "server.port": port, "smtp.recipients": len(rcpts),
    }  # fmt: skip
    if scope is not None and scope.provider:
        attributes["jetpost.provider"] = scope.provider
    span_cm: Any = (
        tracing.tracer().start_as_current_span(
            "smtp sendmail", kind=SpanKind.CLIENT, attributes=attributes
        )
        if tracing.enabled()
        else contextlib.nullcontext()
    )
    started = time.perf_counter()
    code: int | None = None
    with span_cm as span:
        try:
            result = await _ORIGINAL(self, sender, recipients, message, **kwargs)
            reply = str(result[1])  # the text of the reply to DATA; its code is 250
            code = int(reply[:3]) if reply[:3].isdigit() else 250
            return result
        except BaseException as exc:
            code = _reply_code(exc)
            if span is not None:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            metrics.smtp_latency(host, _result(code), time.perf_counter() - started)
            if scope is not None:
                scope.code = code
            if span is not None and code is not None:
                span.set_attribute("smtp.reply_code", code)


def instrument() -> None:
    """Idempotent: wraps aiosmtplib.SMTP.sendmail once."""
    if aiosmtplib.SMTP.sendmail is not _sendmail:
        aiosmtplib.SMTP.sendmail = _sendmail  # type: ignore[method-assign]
