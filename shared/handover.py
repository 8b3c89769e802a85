"""A delivered message handed to its handler without FastStream's per-message stack.

FastStream's `consume` runs, for every message: an AsyncExitStack, two context
scopes, an instance of every broker middleware entered and exited, the parser, the
decoder, the filter, a log context, the handler wrapped in each middleware's
`consume_scope`, and a loop over response publishers. For a jetpost subscriber
(MANUAL acks, no response, handlers that never raise) that came to about a third of
the pipeline's CPU per mail.

So when the broker's middlewares are exactly the ones known here (FastStream's
Prometheus middleware and `DeliveryScopeMiddleware`; with tracing on, FastStream's
own path is kept), a delivery is: the subscriber still running, its lock held (so
FastStream's graceful shutdown still waits for handlers at work), the same
`NatsMessage` built, the same consume metrics recorded, a fresh delivery scope, the
handler. What FastStream adds beyond that (DEBUG "Received"/"Processed" log lines,
its context for dependency injection, which jetpost's handlers do not use) is left
out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from faststream.message import AckStatus
from faststream.nats import NatsMessage
from faststream.nats.message import NatsMessage as NatsMessageClass
from faststream.prometheus.consts import PROCESSING_STATUS_BY_ACK_STATUS
from faststream.prometheus.middleware import PrometheusMiddleware
from faststream.prometheus.types import ProcessingStatus
from nats.aio.msg import Msg

from shared.telemetry.destinations import consume_metrics
from shared.telemetry.metrics import DeliveryScopeMiddleware, delivery, enter_delivery

Handler = Callable[[NatsMessage], Coroutine[Any, Any, None]]
Deliver = Callable[[Msg], Coroutine[Any, Any, None]]


def known(middlewares: Sequence[Any]) -> bool:
    """Whether the lean path does everything these broker middlewares would."""
    return all(
        isinstance(m, PrometheusMiddleware) or m is DeliveryScopeMiddleware for m in middlewares
    )


def status_of(committed: AckStatus | None, err: BaseException | None) -> ProcessingStatus:
    """What FastStream's Prometheus middleware records as the processing status."""
    if committed is None:
        return ProcessingStatus.error if err is not None else ProcessingStatus.acked
    return PROCESSING_STATUS_BY_ACK_STATUS.get(committed, ProcessingStatus.error)


def lean(subscriber: Any, middlewares: Sequence[Any], handler: Handler) -> Deliver | None:
    """The delivery function for `subscriber`, or None: FastStream's path is needed."""
    if not known(middlewares):
        return None
    metrics = consume_metrics(middlewares)
    scoped = DeliveryScopeMiddleware in middlewares

    async def deliver(raw: Msg) -> None:
        if not subscriber.running:
            return
        with subscriber.lock:  # FastStream's graceful stop waits for it
            # the class itself: `faststream.nats.NatsMessage` is an Annotated alias,
            # and calling one costs a typing detour per message
            msg = NatsMessageClass(raw, raw.data, headers=raw.headers or {},
                                   correlation_id=raw.reply or raw.subject)  # fmt: skip
            series = metrics.received(raw.subject, len(raw.data)) if metrics else None
            token = enter_delivery(raw) if scoped else None
            started = time.perf_counter()
            err: BaseException | None = None
            try:
                await handler(msg)
            except Exception as exc:
                err = exc
                if series is not None:
                    series.failed(exc)
                raise
            finally:
                if token is not None:
                    delivery.reset(token)
                if series is not None:
                    series.done(time.perf_counter() - started, status_of(msg.committed, err))

    return deliver
