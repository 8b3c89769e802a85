"""Webhook deliveries per second against raw httpx POSTs to the same receiver, in the
same run: `python -m bench.webhooks [--count 3000] [--runs 3]`.

Both sides POST to one signature-verifying receiver (tests/webhook_receiver.py, its
own process, as a customer's server would be) with the same concurrency (32). The raw
side sends pre-signed bodies with one httpx client (same socket options); jetpost's
side is `run_webhooks` on a real nats-server and PostgreSQL: fetch from the endpoint's
durable consumer, look up the mail, sign, POST through the SSRF guard, record the
attempt (batched COPY), ack.
Prints each run and the median ratio (goal >= 0.8).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import nats
import psycopg

from services.webhooks.catalog import WEBHOOK_TYPES, Mail, body
from services.webhooks.post import SOCKET_OPTIONS
from services.webhooks.secrets import SecretBox, Signer, new_secret
from services.webhooks.service import run_webhooks
from shared.embedded import EmbeddedNats, embedded_postgres
from shared.eventlog import append
from shared.events import (
    Delivered,
    WebhookEndpointCreated,
    WebhookEndpointDeleted,
    event_id_for,
)
from shared.migrate import migrate
from shared.nats_setup import apply_definitions, load_definitions
from shared.settings import load_settings
from shared.subjects import EVT_STREAM

CONCURRENCY = 32


async def raw_rate(url: str, secret: str, count: int) -> float:
    now = datetime.now(UTC)
    signer = Signer([secret])
    items = []
    for i in range(count):
        event = Delivered(event_id=f"raw-{i}", message_id=f"raw{i}", attempt=1, provider="smtp")
        content = body(event, Mail())
        items.append((content, signer.headers(event.event_id, now, content)))
    queue = iter(items)
    transport = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_keepalive_connections=256), socket_options=SOCKET_OPTIONS
    )
    async with httpx.AsyncClient(transport=transport) as client:

        async def worker() -> None:
            for content, headers in queue:
                response = await client.post(url, content=content, headers=headers)
                assert response.status_code == 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - started)


async def jetpost_rate(url: str, secret: str, count: int, data: Path, db: str,
                       nats_url: str) -> float:  # fmt: skip
    settings = load_settings(
        nats_url=nats_url,
        database_url=db,
        data_dir=data,
        webhook_allow_private=True,
        webhook_concurrency=CONCURRENCY,
    )
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await apply_definitions(js, load_definitions(settings))
    endpoint_id = f"whe_bench{int(time.time() * 1000)}"
    sealed = SecretBox.from_settings(settings).seal(secret)
    await append(js, WebhookEndpointCreated(
        event_id=event_id_for(endpoint_id, "webhook_endpoint_created"), message_id=endpoint_id,
        url=url, events=("message.delivered",), secret=sealed,
    ))  # fmt: skip
    pending = []  # the events first: the measure is deliveries, not appends
    for i in range(count):
        mid = f"b{endpoint_id[-6:]}{i}"
        event = Delivered(event_id=event_id_for(mid, "delivered"), message_id=mid, attempt=1,
                          provider="smtp")  # fmt: skip
        pending.append(asyncio.ensure_future(append(js, event)))
        if len(pending) >= 256:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    stop, started = asyncio.Event(), asyncio.Event()
    service = asyncio.create_task(run_webhooks(settings, stop, started))
    await asyncio.wait_for(started.wait(), 30)  # its consumer exists: delivery starts now
    start = time.perf_counter()
    query = "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = %s AND outcome = %s"
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        while True:  # the attempts recorded (each recorded before its ack)
            row = await (await conn.execute(query, (endpoint_id, "delivered"))).fetchone()
            if row is not None and row[0] >= count:
                break
            await asyncio.sleep(0.01)
    rate = count / (time.perf_counter() - start)
    stop.set()
    await service
    await append(js, WebhookEndpointDeleted(  # the next run has an endpoint of its own
        event_id=event_id_for(endpoint_id, "webhook_endpoint_deleted"), message_id=endpoint_id
    ))  # fmt: skip
    with contextlib.suppress(Exception):
        await js.delete_consumer(EVT_STREAM, f"webhook_{endpoint_id}")
    await nc.close()
    return rate


async def main(count: int, runs: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    assert "message.delivered" in WEBHOOK_TYPES
    logging.getLogger("jetpost").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="jetpost-bench-wh-") as tmp:
        server = EmbeddedNats(store_dir=Path(tmp) / "nats")
        nats_url = server.start()
        try:
            with embedded_postgres(Path(tmp) / "pg") as db:
                await migrate(db, load_settings().migrations_dir)
                receiver = subprocess.Popen(  # noqa: ASYNC220 - once, before measuring
                    [sys.executable, "-m", "tests.webhook_receiver"], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, text=True,
                )  # fmt: skip
                assert receiver.stdin is not None and receiver.stdout is not None
                url = receiver.stdout.readline().strip()
                ratios = []
                try:
                    for run in range(runs):
                        secret = new_secret()
                        receiver.stdin.write(f"secret {secret}\n")
                        receiver.stdin.flush()
                        raw = await raw_rate(url, secret, count)
                        ours = await jetpost_rate(url, secret, count, Path(tmp) / "data", db,
                                                  nats_url)  # fmt: skip
                        ratios.append(ours / raw)
                        print(f"run {run + 1}: raw httpx {raw:,.0f}/s, jetpost webhooks "
                              f"{ours:,.0f}/s, ratio {ours / raw:.2f}", flush=True)  # fmt: skip
                    receiver.stdin.write("stats\n")
                    receiver.stdin.flush()
                    requests, delivered, bad = map(int, receiver.stdout.readline().split())
                    print(f"receiver: {requests} requests, {delivered} verified, {bad} bad")
                    assert bad == 0
                finally:
                    receiver.stdin.close()
                    receiver.wait(10)
                print(f"median ratio of {runs}: {statistics.median(ratios):.2f} (goal >= 0.8)")
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.count, args.runs))
