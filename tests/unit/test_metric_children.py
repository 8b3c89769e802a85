"""shared/telemetry/children.py's `Fast` leaves a metric exactly as the label child's
own methods do: the same operations applied both ways to twin registries give the same
samples (what a scrape reads), for counters, gauges and histograms, including values
on bucket bounds, outside them, NaN, and the calls it hands to the child."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

from shared.telemetry.children import Children, Fast

BUCKETS = (0.005, 0.01, 0.1, 1.0, 2.5, 10.0)
amounts = st.one_of(
    st.sampled_from([*BUCKETS, 0.0, -1.0, math.inf, math.nan, 1e-9, 1e9]),
    st.floats(min_value=-5, max_value=50, allow_nan=False),
)
ops = st.lists(
    st.tuples(st.sampled_from(["counter", "gauge_inc", "gauge_dec", "histogram", "summary"]),
              st.sampled_from(["a", "b"]), amounts),
    max_size=60,
)  # fmt: skip


def metrics(registry: CollectorRegistry) -> dict[str, Any]:
    return {
        "counter": Counter("c", "c", ["k"], registry=registry),
        "gauge": Gauge("g", "g", ["k"], registry=registry),
        "histogram": Histogram("h", "h", ["k"], buckets=BUCKETS, registry=registry),
        "summary": Summary("s", "s", ["k"], registry=registry),
    }


def apply(found: dict[str, Any], op: str, label: str, amount: float, fast: bool) -> None:
    metric = found["gauge" if op.startswith("gauge") else op]
    child = Children(metric).labels(label) if fast else metric.labels(label)
    if op == "counter":
        child.inc(abs(amount) if amount == amount else 1.0)
    elif op == "gauge_inc":
        child.inc(amount)
    elif op == "gauge_dec":
        child.dec(amount)
    else:
        child.observe(amount)


def samples(registry: CollectorRegistry) -> list[tuple[str, tuple[Any, ...], str]]:
    found = []
    for family in registry.collect():
        for s in family.samples:
            if not s.name.endswith("_created"):
                found.append((s.name, tuple(sorted(s.labels.items())), repr(s.value)))
    return sorted(found)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_fast_children_leave_the_samples_the_child_methods_leave(
    sequence: list[tuple[str, str, float]],
) -> None:
    plain, fast = CollectorRegistry(), CollectorRegistry()
    plain_metrics, fast_metrics = metrics(plain), metrics(fast)
    for op, label, amount in sequence:
        apply(plain_metrics, op, label, amount, fast=False)
        apply(fast_metrics, op, label, amount, fast=True)
    assert samples(fast) == samples(plain)


def test_what_fast_cannot_write_goes_to_the_child() -> None:
    registry = CollectorRegistry()
    counter = Fast(Counter("c", "c", ["k"], registry=registry).labels("a"))
    summary = Fast(Summary("s", "s", ["k"], registry=registry).labels("a"))
    counter.inc(2, {"trace_id": "abc"})  # an exemplar: the child's own inc
    summary.observe(1.5)  # no buckets: the child's own observe
    assert counter._value is not None and summary._sum is None
    assert counter._labelvalues == ("a",)  # any other attribute is the child's
    try:
        counter.inc(-1)
    except ValueError:
        pass  # as the child: a counter does not go down
    else:
        raise AssertionError("a negative counter increment was accepted")
    got = {s.name: s for f in registry.collect() for s in f.samples}
    assert got["c_total"].value == 2.0 and got["c_total"].exemplar is not None
    assert (got["s_sum"].value, got["s_count"].value) == (1.5, 1.0)
