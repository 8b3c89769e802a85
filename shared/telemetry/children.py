"""Label children looked up once per label set, not on every message.

prometheus_client's `labels()` checks and joins its label values under a lock on
every call; the pipeline called it about a dozen times per mail (its own counters,
FastStream's consume metrics): several percent of the CPU of a delivery. A child
found once is kept here; the label sets are few (types, outcomes, subject patterns).
"""

from __future__ import annotations

from typing import Any


class Children:
    """`metric.labels(...)` with the children kept by their label values."""

    __slots__ = ("found", "metric")

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self.found: dict[Any, Any] = {}

    def labels(self, *values: str, **named: str) -> Any:
        key = (values, tuple(named.items())) if named else values
        child = self.found.get(key)
        if child is None:
            child = self.found[key] = self.metric.labels(*values, **named)
        return child

    def __getattr__(self, name: str) -> Any:  # everything else is the metric's
        return getattr(self.metric, name)


def cache_container(container: Any, names: tuple[str, ...]) -> None:
    """Put `Children` in front of the named metrics of an object holding them
    (FastStream's MetricsContainer)."""
    for name in names:
        setattr(container, name, Children(getattr(container, name)))
