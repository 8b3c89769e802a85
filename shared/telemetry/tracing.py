"""One trace per message, across processes, in the W3C `traceparent` header.

FastStream's OpenTelemetry middleware (services.runner.make_broker) opens a span for
every consumed message from the `traceparent` of its NATS headers; the appends of
shared.eventlog carry the current context on to the next service (`append_span`), so
API request -> command -> intake -> renderer -> sender are one trace. Feedback that
arrives without a context (a DSN, a webhook, a tracking hit) is parented on the
context stored with the message's first event (`message_context`), so it joins the
message's trace too.

Nothing is exported unless configured: `OTEL_EXPORTER_OTLP_ENDPOINT` (the standard
OTEL_* variables) sends spans by OTLP/HTTP, `JETPOST_TRACE_CONSOLE=true` prints them.
Without either, the global provider stays OpenTelemetry's no-op one and every helper
here returns at once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import Link, SpanKind

TRACEPARENT = "traceparent"
Context = otel_context.Context
_provider: TracerProvider | None = None


def install(service_name: str = "jetpost") -> TracerProvider:
    """The process's SDK tracer provider, made global once (OpenTelemetry allows one)."""
    global _provider
    if _provider is None:
        _provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        trace.set_tracer_provider(_provider)
    return _provider


def configure(console: bool, service_name: str = "jetpost") -> bool:
    """Export as configured (OTLP by the OTEL_* environment, console when asked);
    returns whether tracing is on."""
    otlp = bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    if not (otlp or console) or _provider is not None:
        return _provider is not None
    provider = install(os.environ.get("OTEL_SERVICE_NAME", service_name))
    if otlp:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if console:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    return True


def enabled() -> bool:
    return _provider is not None


def shutdown() -> None:
    """Flush what is buffered (at process exit)."""
    if _provider is not None:
        _provider.force_flush(5_000)


def tracer() -> trace.Tracer:
    return trace.get_tracer("jetpost")


def trace_id_of(headers: Mapping[str, str] | None) -> str | None:
    """The 32-hex trace id of a `traceparent` header (version-traceid-spanid-flags)."""
    value = (headers or {}).get(TRACEPARENT, "")
    parts = value.split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
        return parts[1]
    return None


def context_from(headers: Mapping[str, str] | None) -> otel_context.Context | None:
    """The context a stored message was appended in, or None when it carries none."""
    if not headers or TRACEPARENT not in headers:
        return None
    return propagate.extract(dict(headers))


@contextlib.contextmanager
def producer_span(
    name: str, headers: dict[str, str], parent: otel_context.Context | None = None,
    **attributes: str,
) -> Iterator[None]:  # fmt: skip
    """A producer span for one publish, its context injected into `headers`. With
    `parent` (the message's own context) the span joins the message's trace, linked to
    whatever was current (the HTTP request of a tracking hit, say)."""
    if _provider is None:
        yield
        return
    links = []
    if parent is not None:
        current = trace.get_current_span().get_span_context()
        if current.is_valid:
            links.append(Link(current))
    with tracer().start_as_current_span(
        name, context=parent, kind=SpanKind.PRODUCER, links=links,
        attributes={"messaging.system": "nats", **attributes},
    ):  # fmt: skip
        propagate.inject(headers)
        yield


def current_span() -> trace.Span:
    return trace.get_current_span()
