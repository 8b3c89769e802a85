"""Pure parts of observability: metric names the docs use, outcome labels, trace ids,
and which text names an address (erasure)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from faststream.nats.prometheus import NatsPrometheusMiddleware
from prometheus_client import REGISTRY, CollectorRegistry

from services.api.metrics import Metrics
from shared.erasure import mentions
from shared.events import Bounced, Delivered
from shared.telemetry import metrics
from shared.telemetry.tracing import trace_id_of

DOCS = Path(__file__).resolve().parents[2] / "docs"
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def exported_names() -> set[str]:
    faststream = CollectorRegistry()
    NatsPrometheusMiddleware(registry=faststream, app_name="jetpost")
    names = set()
    for registry in (REGISTRY, Metrics().registry, faststream):
        for family in registry.collect():
            names |= {family.name + s for s in SUFFIXES.get(family.type, ("",))}
    return names


def test_the_dashboard_and_alerts_use_only_exported_metrics() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DOCS / "alerts.yaml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {n for e in exprs for n in re.findall(r"\b(?:jetpost|faststream)_[a-z_]+", e)}
    assert used and used <= exported_names(), used - exported_names()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_outcomes_are_counted_by_provider_and_recipient_domain() -> None:
    labels = {"outcome": "bounced", "provider": "smtp", "domain": "bounce.test"}
    before = sample("jetpost_messages_total", **labels)
    metrics.observe_appended(Bounced(event_id="e", message_id="m", kind="hard",
                                     provider="smtp", recipients=("a@Bounce.test",)))  # fmt: skip
    assert sample("jetpost_messages_total", **labels) == before + 1
    # a sender outcome: the domain noted by the SMTP transaction of this message
    scope = metrics.Delivery(domains=["deliver.test"])
    token = metrics.delivery.set(scope)
    try:
        labels = {"outcome": "delivered", "provider": "smtp", "domain": "deliver.test"}
        before = sample("jetpost_messages_total", **labels)
        metrics.observe_appended(Delivered(event_id="e", message_id="m", attempt=1,
                                           provider="smtp"))  # fmt: skip
        assert sample("jetpost_messages_total", **labels) == before + 1
    finally:
        metrics.delivery.reset(token)


def test_domains_past_the_cap_share_one_label() -> None:
    seen = set(metrics._domains)
    try:
        metrics._domains.update(f"d{i}.test" for i in range(metrics.MAX_DOMAINS))
        assert metrics.domain_label("new.test") == "other"
        assert metrics.domain_label("d1.test") == "d1.test"
    finally:
        metrics._domains.clear()
        metrics._domains.update(seen)


def test_trace_id_of_a_traceparent() -> None:
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_of({"traceparent": f"00-{tid}-00f067aa0ba902b7-01"}) == tid
    assert trace_id_of({"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"}) is None
    assert trace_id_of({"traceparent": "garbage"}) is None
    assert trace_id_of(None) is None


def test_an_address_is_found_only_as_a_whole_address() -> None:
    pattern = mentions("bob@example.com")
    assert pattern.search(b'{"to": ["Bob <BOB@Example.com>"]}')
    assert pattern.search(b'"bob@example.com"')
    assert pattern.search(b"To: bob@example.com\r\n")
    assert pattern.search(b"bob@example.com.")  # end of a sentence
    assert not pattern.search(b'"jimbob@example.com"')
    assert not pattern.search(b'"bob@example.com.evil"')
    assert not pattern.search(b'"bob@example.community"')
    assert not pattern.search(b'"bob+x@example.com"')
