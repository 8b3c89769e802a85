"""FastStream's Prometheus middleware names each consumed message's destination by its
subject, and an event's subject carries its message id (`mail.evt.<id>.rendered`):
one new time series per mail, so the metrics grew without bound and creating the
series cost more CPU than the rest of the bookkeeping. Here the destination is the
subject with the message id as `*` (`mail.evt.*.rendered`), a handful of series."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faststream.nats.prometheus.provider import NatsMetricsSettingsProvider
from faststream.prometheus import ConsumeAttrs
from faststream.prometheus.middleware import PrometheusMiddleware
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry

from shared.subjects import EVT_PREFIX
from shared.telemetry.children import cache_container

_EVT = EVT_PREFIX + "."


def destination(subject: str) -> str:
    """`mail.evt.<id>.<type>` -> `mail.evt.*.<type>`; other subjects as they are."""
    if subject.startswith(_EVT):
        return f"{EVT_PREFIX}.*.{subject.rpartition('.')[2]}"
    return subject


class _Provider(NatsMetricsSettingsProvider):
    __slots__ = ()

    def get_consume_attrs_from_message(self, msg: Any) -> ConsumeAttrs:
        attrs = super().get_consume_attrs_from_message(msg)
        attrs["destination_name"] = destination(attrs["destination_name"])
        return attrs


def _provider(msg: Msg | Sequence[Msg] | None) -> _Provider | None:
    return _Provider() if isinstance(msg, Msg) or msg is None else None


_CONSUME_METRICS = (
    "received_messages_total", "received_messages_size_bytes", "received_messages_in_process",
    "received_processed_messages_total", "received_processed_messages_duration_seconds",
    "received_processed_messages_exceptions_total",
)  # fmt: skip


def prometheus_middleware(registry: CollectorRegistry, app_name: str) -> Any:
    """FastStream's per-message metrics, by subject pattern, their label children
    looked up once (shared/telemetry/children.py)."""
    middleware = PrometheusMiddleware(settings_provider_factory=_provider, registry=registry,
                                      app_name=app_name)  # fmt: skip
    cache_container(middleware._metrics_container, _CONSUME_METRICS)
    return middleware


@dataclass
class Series:
    """The consume series of one destination (subject pattern), looked up once."""

    labels: dict[str, str]
    container: Any
    received: Any
    size: Any
    in_process: Any
    duration: Any
    processed: dict[Any, Any] = field(default_factory=dict)  # by status

    def done(self, seconds: float, status: Any) -> None:
        self.duration.observe(seconds)
        self.in_process.dec()
        child = self.processed.get(status)
        if child is None:
            metric = self.container.received_processed_messages_total
            child = self.processed[status] = metric.labels(status=status.value, **self.labels)
        child.inc()

    def failed(self, exc: BaseException) -> None:
        metric = self.container.received_processed_messages_exceptions_total
        metric.labels(exception_type=type(exc).__name__, **self.labels).inc()


class ConsumeMetrics:
    """The series FastStream's PrometheusMiddleware records for a consumed message
    (same names, same labels), for deliveries that shared/consumers.py hands to their
    handler without FastStream's per-message middleware stack."""

    def __init__(self, middleware: PrometheusMiddleware) -> None:
        self.container = middleware._metrics_container
        self.app_name = middleware._metrics_manager._app_name
        self.series: dict[str, Series] = {}

    def received(self, subject: str, size: int) -> Series:
        """Count a message in (received, its size, in process); `done` when handled."""
        handler = destination(subject)
        series = self.series.get(handler)
        if series is None:
            series = self.series[handler] = self._series(handler)
        series.received.inc()
        series.size.observe(size)
        series.in_process.inc()
        return series

    def _series(self, handler: str) -> Series:
        labels = {"app_name": self.app_name, "broker": "nats", "handler": handler}
        c = self.container
        return Series(labels, c, c.received_messages_total.labels(**labels),
                      c.received_messages_size_bytes.labels(**labels),
                      c.received_messages_in_process.labels(**labels),
                      c.received_processed_messages_duration_seconds.labels(**labels))  # fmt: skip


def consume_metrics(middlewares: Sequence[Any]) -> ConsumeMetrics | None:
    """The broker's consume metrics, if it has FastStream's Prometheus middleware."""
    found = [m for m in middlewares if isinstance(m, PrometheusMiddleware)]
    return ConsumeMetrics(found[0]) if found else None
