"""The Prometheus metrics every jetpost process exports, by name.

They live in prometheus_client's default registry (with its process and GC
collectors), served at /metrics by `shared.telemetry.server` (JETPOST_METRICS_PORT)
and by the API. docs/grafana-dashboard.json and docs/alerts.yaml are built on these
names: rename one there too.

Outcomes are recorded where events are appended (`observe_appended`, called by
shared.eventlog.append), so no service has to remember to count: the sender's
`delivered`, the feedback receiver's `bounced` and the API's `opened` are counted the
same way. The recipient domains of a sender outcome are noted in `delivery`, a
per-message scope opened by `DeliveryScopeMiddleware`: by the sender for every
provider (`note_recipients`), narrowed by an SMTP transaction to its own recipients
(shared.telemetry.smtp).
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faststream import BaseMiddleware
from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from shared.events import Event, field_of
from shared.telemetry.children import Children

MESSAGES = Counter(
    "jetpost_messages", "Message outcomes appended, by outcome, provider and recipient domain",
    ["outcome", "provider", "domain"],
)  # fmt: skip
SMTP_LATENCY = Histogram(
    "jetpost_smtp_seconds", "SMTP mail transactions (MAIL FROM to end of DATA), by host and result",
    ["host", "result"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)  # fmt: skip
EVENTS = Counter("jetpost_events_appended", "Events appended to MAIL_EVT, by type", ["type"])
FEEDBACK = Counter(
    "jetpost_feedback", "Feedback recorded (bounces and complaints by source, opens, clicks, "
    "unsubscribes)", ["kind", "source"],
)  # fmt: skip
WEBHOOKS = Counter("jetpost_webhook_events", "Provider webhook reports recorded, by type", ["type"])
CONSUMER_PENDING = Gauge(
    "jetpost_consumer_pending", "Messages not yet delivered to a durable consumer (queue depth)",
    ["stream", "durable"],
)  # fmt: skip
CONSUMER_ACK_PENDING = Gauge(
    "jetpost_consumer_ack_pending", "Messages delivered and not yet acked, per durable",
    ["stream", "durable"],
)  # fmt: skip
CONSUMER_REDELIVERED = Gauge(
    "jetpost_consumer_redelivered", "Messages of a durable delivered more than once "
    "(outstanding)", ["stream", "durable"],
)  # fmt: skip
REDELIVERIES = Counter(
    "jetpost_redeliveries", "Messages handled again after a nak or an ack timeout, by subscriber",
    ["durable"],
)  # fmt: skip
PROJECTION_LAG = Gauge(
    "jetpost_projection_lag", "Events in MAIL_EVT a projection has not applied yet",
    ["projection"],
)  # fmt: skip
RETENTION_DELETED = Counter(
    "jetpost_retention_deleted", "Rows and files removed by the retention worker", ["what"]
)
FORGOTTEN = Counter("jetpost_forgotten", "Addresses forgotten (right to erasure)")

# the per-message ones, their label children looked up once
_messages, _smtp_latency, _events = Children(MESSAGES), Children(SMTP_LATENCY), Children(EVENTS)

OUTCOMES = frozenset({"delivered", "deferred", "bounced", "failed", "suppressed", "rejected",
                      "render_failed", "cancelled", "complained"})  # fmt: skip
MAX_DOMAINS = 500  # past this many distinct domains a process labels new ones `other`
_domains: set[str] = set()


@dataclass
class Delivery:
    """What the SMTP transaction of the message being handled found out."""

    domains: list[str] = field(default_factory=list)
    host: str = ""
    provider: str = ""
    code: int | None = None


delivery: contextvars.ContextVar[Delivery | None] = contextvars.ContextVar(
    "jetpost_delivery", default=None
)


def note_recipients(recipients: Sequence[str]) -> None:
    """The recipients of the message being handled: their domains label its outcome."""
    if (scope := delivery.get()) is not None:
        scope.domains = sorted({r.rpartition("@")[2].lower() for r in recipients if "@" in r})


def domain_label(domain: str) -> str:
    domain = domain.lower() or "unknown"
    if domain in _domains or len(_domains) < MAX_DOMAINS:
        _domains.add(domain)
        return domain
    return "other"


def record_outcome(outcome: str, provider: str, domain: str) -> None:
    _messages.labels(outcome, provider or "none", domain_label(domain)).inc()


def smtp_latency(host: str, result: str, seconds: float) -> None:
    _smtp_latency.labels(host, result).observe(seconds)


def _domains_of(event: Event) -> list[str]:
    addresses: tuple[str, ...] = ()
    if event.type == "bounced":
        addresses = event.recipients
    elif event.type == "suppressed":
        addresses = event.addresses
    elif event.type == "complained":
        addresses = (event.recipient,)
    found = sorted({a.rpartition("@")[2] for a in addresses if "@" in a})
    if found:
        return found
    scope = delivery.get()
    return scope.domains if scope is not None and scope.domains else ["unknown"]


def observe_appended(event: Event) -> None:
    """Count one appended event (called by shared.eventlog.append once it is stored)."""
    kind = event.type
    _events.labels(kind).inc()
    if event.type == "attempted" and (scope := delivery.get()) is not None:
        scope.provider = event.provider  # the SMTP span of this attempt names it
    source = str(field_of(event, "source") or "")
    if kind in OUTCOMES:
        provider = str(field_of(event, "provider") or source or "none")
        for domain in _domains_of(event):
            record_outcome(kind, provider, domain)
    if kind in ("bounced", "complained", "opened", "clicked", "unsubscribed") and (
        kind != "bounced" or source != "smtp"
    ):
        FEEDBACK.labels(kind, source or "link").inc()
    if source == "webhook" or field_of(event, "provider_event_id"):
        WEBHOOKS.labels(kind).inc()


def enter_delivery(raw: Any) -> contextvars.Token[Delivery | None]:
    """A fresh `Delivery` for a consumed message (`delivery.reset(token)` after it),
    and a redelivery counted."""
    metadata = getattr(raw, "metadata", None) if raw is not None else None
    if metadata is not None and metadata.num_delivered > 1:
        REDELIVERIES.labels(metadata.consumer or "").inc()
    return delivery.set(Delivery())


class DeliveryScopeMiddleware(BaseMiddleware):
    """A fresh `Delivery` per consumed message, and redeliveries counted."""

    async def consume_scope(self, call_next: Any, msg: Any) -> Any:
        token = enter_delivery(getattr(msg, "raw_message", None))
        try:
            return await call_next(msg)
        finally:
            delivery.reset(token)


def registry() -> Any:
    return REGISTRY
