"""Gauges that only the servers know: each durable consumer's queue depth, ack-pending
and redelivered counts (from NATS), and each projection's lag (checkpoint against
MAIL_EVT's last sequence). Polled every JETPOST_METRICS_INTERVAL by the process that
serves metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from shared.consumers import TRANSIENT_ERRORS
from shared.nats_connect import NatsTarget, connect
from shared.nats_setup import Definitions
from shared.subjects import EVT_STREAM
from shared.telemetry.metrics import (
    CONSUMER_ACK_PENDING,
    CONSUMER_PENDING,
    CONSUMER_REDELIVERED,
    PROJECTION_LAG,
)

log = logging.getLogger("jetpost.metrics")


async def poll_consumers(js: JetStreamContext, definitions: Definitions) -> None:
    for stream, config in definitions.consumers:
        durable = config.durable_name or ""
        try:
            info = await js.consumer_info(stream, durable)
        except NotFoundError:
            continue
        CONSUMER_PENDING.labels(stream, durable).set(info.num_pending or 0)
        CONSUMER_ACK_PENDING.labels(stream, durable).set(info.num_ack_pending or 0)
        CONSUMER_REDELIVERED.labels(stream, durable).set(info.num_redelivered or 0)


async def poll_projection_lag(js: JetStreamContext, database_url: str) -> None:
    last = int((await js.stream_info(EVT_STREAM)).state.last_seq)
    async with await psycopg.AsyncConnection.connect(database_url, connect_timeout=5) as conn:
        cur = await conn.execute("SELECT name, last_seq FROM projection_checkpoints")
        for name, seq in await cur.fetchall():
            PROJECTION_LAG.labels(name).set(max(last - int(seq), 0))


async def run_pollers(
    target: NatsTarget, definitions: Definitions, database_url: str | None,
    interval: float, stop: asyncio.Event,
) -> None:  # fmt: skip
    nc = await connect(target, name="jetpost-metrics")
    try:
        js = nc.jetstream(timeout=5)
        while not stop.is_set():
            try:
                await poll_consumers(js, definitions)
                if database_url:
                    await poll_projection_lag(js, database_url)
            except (*TRANSIENT_ERRORS, psycopg.Error) as exc:  # type: ignore[misc]
                log.debug("metrics poll failed: %r", exc)  # gauges keep their last value
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        await nc.close()
