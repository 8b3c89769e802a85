"""What a delivery costs besides its handler: no hop to a worker thread. FastStream
runs a plain-function decoder (and dependency injection) in anyio's thread pool, one
thread hop per delivered message; jetpost's subscribers stay on the event loop."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import pytest
from faststream.prometheus.types import ProcessingStatus
from nats.js import JetStreamContext
from prometheus_client import REGISTRY

from services.capture import CaptureSink
from tests.conftest import Pipeline
from tests.delivery_flow import send_many, wait_settled


async def test_deliveries_do_not_hop_to_a_worker_thread(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops: list[Any] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    ids = await send_many(js, [f"user{i}@example.com" for i in range(5)])
    settled = await wait_settled(js, ids)
    assert set(map(tuple, settled.values())) == {("delivered",)}
    await sink.wait_for(5, timeout=10)
    assert hops == []  # through intake, renderer and sender: 15 deliveries


ACKED = ProcessingStatus.acked.value  # the label FastStream's middleware writes


def sample(name: str, **labels: str) -> float:
    base = {"app_name": "jetpost", "broker": "nats", "handler": "mail.evt.*.rendered"}
    return REGISTRY.get_sample_value(name, base | labels) or 0.0


async def test_deliveries_record_faststreams_consume_metrics(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    """Handed over without FastStream's middleware stack (shared/handover.py), a
    delivery still counts in FastStream's own series, as its Prometheus middleware
    records them: received, size, in process, processed by status, duration."""
    names = ("faststream_received_messages_total", "faststream_received_messages_size_bytes_count",
             "faststream_received_processed_messages_duration_seconds_count")  # fmt: skip
    before = {name: sample(name) for name in names}
    acked = sample("faststream_received_processed_messages_total", status=ACKED)
    ids = await send_many(js, [f"user{i}@example.com" for i in range(4)])
    await wait_settled(js, ids)
    await sink.wait_for(4, timeout=10)
    assert {name: sample(name) - before[name] for name in names} == dict.fromkeys(names, 4.0)
    assert sample("faststream_received_processed_messages_total", status=ACKED) - acked == 4
    assert sample("faststream_received_messages_in_process") == 0
