"""Prometheus metrics of one API instance, in its own registry (several apps can
live in one process, as in the tests): requests by route and status and their
latency; /metrics adds the process-wide ones (shared.telemetry.metrics: outcomes,
queues, projection lag, ...), so `jetpost dev` and `jetpost run api` serve them all."""

from __future__ import annotations

import time

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from shared.telemetry import metrics as process_metrics
from shared.telemetry.server import render as render_process

# Litestar adds `; charset=utf-8` to a text/ type itself: without it here, it is said once
CONTENT_TYPE = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "jetpost_api_requests", "HTTP requests answered, by route and status",
            ["method", "route", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "jetpost_api_request_duration_seconds", "HTTP request latency, by route",
            ["method", "route"], registry=self.registry,
        )  # fmt: skip
        self.projection_lag = process_metrics.PROJECTION_LAG
        self._latency: dict[tuple[str, str], Histogram] = {}
        self._requests: dict[tuple[str, str, int], Counter] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # the labelled children, looked up once per series (labels() takes a lock)
        latency = self._latency.get((method, route))
        if latency is None:
            latency = self._latency[method, route] = self.latency.labels(method, route)
        latency.observe(seconds)
        count = self._requests.get((method, route, status))
        if count is None:
            count = self._requests[method, route, status] = self.requests.labels(
                method, route, str(status)
            )
        count.inc()

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
