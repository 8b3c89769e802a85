"""Label children looked up once per label set, and updated without their per-call
layers.

prometheus_client's `labels()` checks and joins its label values under a lock on
every call; the pipeline called it about a dozen times per mail (its own counters,
FastStream's consume metrics): several percent of the CPU of a delivery. A child
found once is kept here; the label sets are few (types, outcomes, subject patterns).

Its `inc`, `dec` and `observe` cost more again: each is two or three Python calls
deep (an observability check, a lock, for a histogram a walk over its buckets), and
the pipeline makes about 25 of them per mail: taken out, one process sent 6-7% more
mail in `bench.e2e_send`. `Fast` adds to the child's own values in place (a
histogram's bucket found by bisection), so a scrape reads exactly what the child's
methods would have left; tests/unit/test_metric_children.py holds the two equal. The
values are updated from the event loop's thread only; a scrape in another thread reads
each under its lock, and CPython reads and writes a float attribute whole. Anything
else (an exemplar, a negative counter increment, a NaN, prometheus_client's
multiprocess values) goes through the child's own method.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from prometheus_client.values import MutexValue


class Fast:
    """A label child (counter, gauge or histogram) whose `inc`, `dec` and `observe`
    write its values directly; every other attribute is the child's."""

    __slots__ = ("_bounds", "_buckets", "_sum", "_value", "child", "kind")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.kind = getattr(child, "_type", "")
        value = getattr(child, "_value", None)
        plain = type(value) is MutexValue and not getattr(child, "_is_most_recent", False)
        self._value = value if plain and self.kind in ("counter", "gauge") else None
        total, buckets = getattr(child, "_sum", None), getattr(child, "_buckets", None)
        whole = self.kind == "histogram" and type(total) is MutexValue and bool(buckets)
        if whole and all(type(b) is MutexValue for b in buckets):  # type: ignore[union-attr]
            self._sum, self._buckets, self._bounds = total, buckets, child._upper_bounds
        else:
            self._sum = self._buckets = self._bounds = None

    def _by_child(self, method: str, amount: float, exemplar: Any) -> None:
        """The child's own method (a gauge's `inc`, a summary's `observe` take no
        exemplar, so one is passed only when given)."""
        call = getattr(self.child, method)
        call(amount, exemplar) if exemplar else call(amount)

    def inc(self, amount: float = 1, exemplar: Any = None) -> None:
        value = self._value
        if value is None or amount < 0 or exemplar:
            self._by_child("inc", amount, exemplar)
            return
        value._value += amount

    def dec(self, amount: float = 1) -> None:
        value = self._value
        if value is None or self.kind != "gauge":
            self.child.dec(amount)
            return
        value._value += -amount  # as Gauge.dec: inc(-amount)

    def observe(self, amount: float, exemplar: Any = None) -> None:
        total = self._sum
        if total is None or exemplar or amount != amount:  # NaN: the child's own walk
            self._by_child("observe", amount, exemplar)
            return
        total._value += amount
        # Histogram.observe counts it in the first bucket whose bound is >= amount
        self._buckets[bisect_left(self._bounds, amount)]._value += 1  # type: ignore[index]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.child, name)


class Children:
    """`metric.labels(...)` with the children kept by their label values."""

    __slots__ = ("found", "metric")

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self.found: dict[Any, Fast] = {}

    def labels(self, *values: str, **named: str) -> Fast:
        key = (values, tuple(named.items())) if named else values
        child = self.found.get(key)
        if child is None:
            child = self.found[key] = Fast(self.metric.labels(*values, **named))
        return child

    def __getattr__(self, name: str) -> Any:  # everything else is the metric's
        return getattr(self.metric, name)


def cache_container(container: Any, names: tuple[str, ...]) -> None:
    """Put `Children` in front of the named metrics of an object holding them
    (FastStream's MetricsContainer)."""
    for name in names:
        setattr(container, name, Children(getattr(container, name)))
