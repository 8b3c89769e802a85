"""Prometheus metrics of one API instance, in its own registry (several apps can
live in one process, as in the tests): requests by route and status and their
latency; /metrics adds the process-wide ones (shared.telemetry.metrics: outcomes,
queues, projection lag, ...), so `jetpost dev` and `jetpost run api` serve them all."""

from __future__ import annotations

import bisect
import itertools
import math
import time
from collections.abc import Iterator
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from shared.telemetry import metrics as process_metrics
from shared.telemetry.server import render as render_process

# Litestar adds `; charset=utf-8` to a text/ type itself: without it here, it is said once
CONTENT_TYPE = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")


BOUNDS = (*Histogram.DEFAULT_BUCKETS[:-1], math.inf)  # prometheus_client's, +Inf last
LE = tuple(floatToGoString(b) for b in BOUNDS)  # type: ignore[no-untyped-call]


class RequestSeries(Collector):
    """`jetpost_api_requests` (a counter by method, route and status) and
    `jetpost_api_request_duration_seconds` (a histogram by method and route), counted
    in plain lists and read out as Prometheus families when scraped: the same samples
    as prometheus_client's Counter and Histogram give (`_created` included), without
    their lock and bucket walk on every request (a thirtieth of a request's CPU).
    Updated from the event loop's thread only; a scrape reads a copy."""

    def __init__(self) -> None:
        # (method, route) -> per-bucket counts (not cumulative), then the sum
        self.latency: dict[tuple[str, str], list[float]] = {}
        self.requests: dict[tuple[str, str, int], int] = {}
        self.created: dict[tuple[Any, ...], float] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        series = self.latency.get((method, route))
        if series is None:
            series = self.latency[method, route] = [0.0] * (len(BOUNDS) + 1)
            self.created[method, route] = time.time()
        series[bisect.bisect_left(BOUNDS, seconds)] += 1  # the first bound >= seconds
        series[-1] += seconds
        key = (method, route, status)
        count = self.requests.get(key)
        if count is None:
            self.created[key] = time.time()
            count = 0
        self.requests[key] = count + 1

    def collect(self) -> Iterator[Metric]:
        created = dict(self.created)
        requests = CounterMetricFamily("jetpost_api_requests",
                                       "HTTP requests answered, by route and status",
                                       labels=["method", "route", "status"])  # fmt: skip
        for key, count in list(self.requests.items()):
            method, route, status = key
            requests.add_metric([method, route, str(status)], count, created=created.get(key))
        yield requests
        doc = "HTTP request latency, by route"
        name = "jetpost_api_request_duration_seconds"
        latency = HistogramMetricFamily(name, doc, labels=["method", "route"])
        made = GaugeMetricFamily(f"{name}_created", doc, labels=["method", "route"])
        for (method, route), series in list(self.latency.items()):
            counts = list(series)
            cumulative = itertools.accumulate(counts[:-1])
            buckets = list(zip(LE, cumulative, strict=True))
            latency.add_metric([method, route], buckets, counts[-1])
            made.add_metric([method, route], created.get((method, route), 0.0))
        yield latency
        yield made


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.series = RequestSeries()
        self.registry.register(self.series)
        self.projection_lag = process_metrics.PROJECTION_LAG

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.series.observe(method, route, status, seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry) + render_process()


class MetricsMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        # The route template, not the path: one series per route, not per message id.
        route = str(scope.get("path_template") or "unmatched")
        method = str(scope.get("method", ""))
        status = {"code": 500}
        started = time.perf_counter()

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await next_app(scope, receive, observe)
        finally:
            self.metrics.observe(method, route, status["code"], time.perf_counter() - started)
