"""What a delivery costs besides its handler: no hop to a worker thread. FastStream
runs a plain-function decoder (and dependency injection) in anyio's thread pool, one
thread hop per delivered message; jetpost's subscribers stay on the event loop."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import pytest
from nats.js import JetStreamContext

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
