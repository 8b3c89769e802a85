"""Replay benchmark: `jetpost replay` of N events against raw Postgres COPY of N rows,
measured in the same run on the same embedded servers; then the latency of
`GET /v1/messages/{id}` (p50/p99) under concurrent load on the replayed data, with
the API served by `jetpost run api` in its own process.

    .venv/bin/python -m bench.replay [--n 200000] [--requests 3000] [--concurrency 16]

The log holds realistic histories (accepted, rendered, attempted, delivered per
message). The raw limit is one COPY of N timeline-shaped rows (seq, message id,
type, time, JSON) into a fresh table: what Postgres can ingest at best. Replay
folds the same N events into all read models (messages + daily_stats, timeline,
suppressions) and swaps them in.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nats
import psycopg

from bench.stack import embedded_stack
from projections.replay import replay
from projections.runner import PROJECTIONS
from services.api.keys import create_key
from shared.embedded import EmbeddedNats, free_port
from shared.eventlog import append
from shared.events import Accepted, Attempted, Delivered, Envelope, Event, Rendered, event_id_for
from shared.mailbox import Mailbox

WINDOW = 512


def history(i: int) -> list[tuple[Event, int]]:
    mid = f"bench{i:08d}"
    envelope = Envelope(sender=Mailbox(email="bench@example.com"),
                        to=(Mailbox(email=f"user{i}@example.com", name=f"User {i}"),))  # fmt: skip
    common = {"message_id": mid, "correlation_id": mid}
    return [
        (Accepted(event_id=event_id_for(mid, "accepted"), envelope=envelope, template="welcome",
                  vars={"name": f"User {i}"}, tags=("bench",), **common), 1),
        (Rendered(event_id=event_id_for(mid, "rendered"), envelope=envelope,
                  subject=f"Welcome to jetpost, User {i}!", html="<p>Hello</p>" * 20,
                  text="Hello\n" * 20, template="welcome", template_version="abc123",
                  headers={"Message-ID": f"<{mid}@example.com>"}, tags=("bench",), **common), 1),
        (Attempted(event_id=event_id_for(mid, "attempted", 1), attempt=1, provider="smtp",
                   **common), 1),
        (Delivered(event_id=event_id_for(mid, "delivered"), attempt=1, provider="smtp",
                   smtp_code=250, response="250 OK", **common), 1),
    ]  # fmt: skip


async def fill(js: nats.js.JetStreamContext, n: int) -> list[bytes]:
    events = [e for i in range((n + 3) // 4) for e in history(i)][:n]
    for lo in range(0, len(events), WINDOW):
        await asyncio.gather(*(append(js, e, k) for e, k in events[lo : lo + WINDOW]))
    return [e.model_dump_json().encode() for e, _ in events]


async def raw_copy(database_url: str, payloads: list[bytes]) -> float:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("CREATE TABLE copy_bench (LIKE message_events INCLUDING ALL)")
        await conn.commit()
        rows = [(i + 1, f"bench{i // 4:08d}", "accepted", "2026-11-22T00:00:00+00:00", p.decode())
                for i, p in enumerate(payloads)]  # fmt: skip
        started = time.perf_counter()
        async with (
            conn.cursor() as cur,
            cur.copy(
                "COPY copy_bench (seq, message_id, type, occurred_at, data) FROM STDIN"
            ) as out,
        ):
            for row in rows:
                await out.write_row(row)
        await conn.commit()
        return time.perf_counter() - started


async def api_latency(
    server: EmbeddedNats, database_url: str, tmp: Path, n_messages: int, requests: int,
    concurrency: int,
) -> tuple[float, float, float]:  # fmt: skip
    """p50 and p99 latency (ms) and requests/s of GET /v1/messages/{id}."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        _, key = await create_key(conn, ["read"], "bench")
        await conn.commit()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETPOST_")}
    env.update(
        JETPOST_NATS_URL=server.url, JETPOST_DATABASE_URL=database_url,
        JETPOST_API_PORT=str(port), JETPOST_DATA_DIR=str(tmp), JETPOST_LOG_LEVEL="WARNING",
    )  # fmt: skip
    api = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "jetpost"), "run", "api", env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        headers = {"Authorization": f"Bearer {key}"}
        limits = httpx.Limits(max_connections=concurrency)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:
            await wait_ready(client, api)
            ids = [f"bench{random.randrange(n_messages):08d}" for _ in range(requests)]
            latencies: list[float] = []

            async def worker(mine: list[str]) -> None:
                for mid in mine:
                    started = time.perf_counter()
                    response = await client.get(f"/v1/messages/{mid}")
                    latencies.append(time.perf_counter() - started)
                    if response.status_code != 200:
                        raise RuntimeError(f"GET {mid}: {response.status_code} {response.text}")

            begun = time.perf_counter()
            await asyncio.gather(*(worker(ids[i::concurrency]) for i in range(concurrency)))
            elapsed = time.perf_counter() - begun
    finally:
        api.terminate()
        await asyncio.wait_for(api.wait(), 10)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    return p50, p99, requests / elapsed


async def wait_ready(client: httpx.AsyncClient, api: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if api.returncode is not None:
            raise RuntimeError("jetpost run api exited")
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the API did not come up within 30s")


async def main(n: int, requests: int, concurrency: int, parts: int | None) -> None:
    async with embedded_stack("jetpost-bench-replay-") as st:
        payloads = await fill(st.js, n)
        copy_seconds = await raw_copy(st.database_url, payloads)
        result = await replay(st.database_url, st.nc, list(PROJECTIONS.values()),
                              nats=st.server.url, parts=parts)  # fmt: skip
        p50, p99, rps = await api_latency(
            st.server, st.database_url, st.tmp, n // 4, requests, concurrency
        )
    copy_rate = n / copy_seconds
    print(f"events                       {n:>12,}")
    print(f"raw COPY into Postgres       {copy_rate:>12,.0f} rows/s")
    print(f"jetpost replay (all models)  {result.rate:>12,.0f} events/s ({result.parts} part(s))")
    print(f"ratio replay / COPY          {result.rate / copy_rate:>12.2f}")
    print("goal                         replay >= 50,000 events/s")
    print(
        f"GET /v1/messages/{{id}}        p50 {p50:.1f} ms, p99 {p99:.1f} ms, {rps:,.0f} req/s "
        f"({requests} requests, {concurrency} concurrent)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--parts",
        type=int,
        default=None,
        help="replay processes (default: one per two CPUs from 50,000 events)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.n, args.requests, args.concurrency, args.parts))
