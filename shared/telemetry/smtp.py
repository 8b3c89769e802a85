"""The SMTP transaction as a span and a latency sample, for whichever provider sends.

The sender's SMTP pool (services/sender/smtp_pool.py, under every smtp://, smtps://
and mx:// provider) runs each transaction inside `transaction()`: a CLIENT span
`smtp sendmail` (host, port, reply code, recipient count) under the sender's span,
`jetpost_smtp_seconds`, and the recipients' domains noted for the outcome metrics
(shared.telemetry.metrics.delivery).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from shared.telemetry import metrics, tracing


def _result(code: int | None) -> str:
    return f"{code // 100}xx" if code else "error"


@contextlib.contextmanager
def transaction(
    host: str, port: int, recipients: Sequence[str]
) -> Iterator[Callable[[int | None], None]]:
    """Around one SMTP transaction; call the yielded function with the reply code."""
    metrics.note_recipients(recipients)
    scope = metrics.delivery.get()
    if scope is not None:
        scope.host = host
    attributes: dict[str, str | int] = {
        "server.address": host, "server.port": port, "smtp.recipients": len(recipients),
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
    reply: list[int | None] = [None]
    started = time.perf_counter()
    with span_cm as span:
        try:
            yield lambda code: reply.__setitem__(0, code)
        except BaseException as exc:
            if span is not None:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            code = reply[0]
            metrics.smtp_latency(host, _result(code), time.perf_counter() - started)
            if scope is not None:
                scope.code = code
            if span is not None and code is not None:
                span.set_attribute("smtp.reply_code", code)
