"""Liveness, readiness, metrics and the AsyncAPI document; none needs a key.

Ready means: NATS connected, Postgres answering, and every projection within
JETPOST_READY_MAX_LAG events of MAIL_EVT's last sequence (reads are that fresh).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psycopg
from litestar import Response
from litestar.di import NamedDependency
from psycopg_pool import PoolTimeout

from services.api.metrics import CONTENT_TYPE
from services.api.problems import Unavailable, problem
from services.api.routing import get
from services.api.runtime import Runtime

TAGS = ["health"]
READY_RETRY_AFTER = 5  # seconds a load balancer waits before asking again


@get("/healthz", summary="The process is up", tags=TAGS)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _checkpoints(rt: Runtime) -> dict[str, int]:
    async with rt.pool.connection(timeout=rt.settings.api_timeout) as conn:
        cur = await conn.execute("SELECT name, last_seq FROM projection_checkpoints ORDER BY name")
        return {name: int(seq) for name, seq in await cur.fetchall()}


async def projection_lags(rt: Runtime) -> dict[str, int]:
    """Events each projection has still to apply; also sets the lag gauge."""
    checkpoints, last = await asyncio.gather(_checkpoints(rt), rt.bus.last_seq())
    lags = {name: max(last - seq, 0) for name, seq in checkpoints.items()}
    for name, lag in lags.items():
        rt.metrics.projection_lag.labels(name).set(lag)
    return lags


@get("/readyz", summary="Ready to serve fresh reads", tags=TAGS)
async def readyz(rt: NamedDependency[Runtime]) -> Response[Any]:
    checks: dict[str, Any] = {"nats": "ok" if rt.bus.connected else "not connected"}
    try:
        async with rt.pool.connection(timeout=rt.settings.api_timeout) as conn:
            await conn.execute("SELECT 1")
        checks["postgres"] = "ok"
    except (psycopg.Error, PoolTimeout) as exc:
        checks["postgres"] = f"unavailable: {type(exc).__name__}"
    if checks["nats"] == "ok" and checks["postgres"] == "ok":
        try:
            lags = await projection_lags(rt)
            limit = rt.settings.ready_max_lag
            checks["projections"] = {
                name: {"lag": lag, "ok": lag <= limit} for name, lag in lags.items()
            }
        except (Unavailable, psycopg.Error, PoolTimeout) as exc:
            checks["projections"] = f"unknown: {exc}"
    failing = [name for name, check in checks.items() if not _ok(check)]
    if failing:
        return problem(503, "not-ready", f"not ready: {', '.join(failing)}",
                       {"Retry-After": str(READY_RETRY_AFTER)}, checks=checks)  # fmt: skip
    return Response({"status": "ready", "checks": checks})


def _ok(check: Any) -> bool:
    if isinstance(check, dict):
        return all(bool(item["ok"]) for item in check.values())
    return bool(check == "ok")


@get("/metrics", summary="Prometheus metrics", tags=TAGS)
async def metrics(rt: NamedDependency[Runtime]) -> Response[bytes]:
    if rt.bus.connected:  # on failure the gauge keeps its last value; /readyz says why
        with contextlib.suppress(Unavailable, psycopg.Error, PoolTimeout):
            await projection_lags(rt)
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE)


@get("/asyncapi.json", summary="AsyncAPI document of the NATS subjects", tags=TAGS)
async def asyncapi(rt: NamedDependency[Runtime]) -> dict[str, Any]:
    return rt.asyncapi


ROUTES = [healthz, readyz, metrics, asyncapi]
