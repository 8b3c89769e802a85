"""Replay benchmark: `jetpost replay` of N events against raw Postgres COPY of N rows,
measured in the same run on the same embedded servers. (Read latency on replayed
data is `bench.api`'s, with its load generator in its own process.)

    .venv/bin/python -m bench.replay [--n 200000] [--parts N] [--sample]

The log holds realistic histories (accepted, rendered, attempted, delivered per
message). The raw limit is one COPY of N timeline-shaped rows (seq, message id,
type, time, JSON) into a fresh table: what Postgres can ingest at best. Replay
folds the same N events into all read models (messages + daily_stats, timeline,
suppressions) and swaps them in.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import httpx
import nats
import psycopg

from bench.sampler import Sampler
from bench.stack import embedded_stack
from projections.replay import replay
from projections.runner import PROJECTIONS
from shared.event_loop import run_loop
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


async def main(n: int, parts: int | None, sample: bool = False) -> None:
    async with embedded_stack("jetpost-bench-replay-") as st:
        payloads = await fill(st.js, n)
        copy_seconds = await raw_copy(st.database_url, payloads)
        sampler = Sampler() if sample else None
        if sampler is not None:
            sampler.start()
        cpu = time.process_time()
        result = await replay(st.database_url, st.nc, list(PROJECTIONS.values()),
                              nats=st.server.url, parts=parts)  # fmt: skip
        cpu = time.process_time() - cpu
        if sampler is not None:
            sampler.stop()
            print(f"== sampled profile of the replay\n{sampler.report(30)}", file=sys.stderr)
    copy_rate = n / copy_seconds
    print(f"events                       {n:>12,}")
    print(f"raw COPY into Postgres       {copy_rate:>12,.0f} rows/s")
    print(f"jetpost replay (all models)  {result.rate:>12,.0f} events/s ({result.parts} part(s))")
    print(f"ratio replay / COPY          {result.rate / copy_rate:>12.2f}")
    print(f"CPU per event, this process  {cpu / n * 1e6:>12.1f} µs (busy {cpu / result.seconds:.0%}"
          f"{'; the parts are not counted' if result.parts > 1 else ''})")  # fmt: skip
    print("goal                         replay >= 50,000 events/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument(
        "--parts",
        type=int,
        default=None,
        help="replay processes (default: one per two CPUs from 50,000 events)",
    )
    parser.add_argument(
        "--sample",
        action="store_true",
        help="print a sampled CPU profile of the replay (bench.sampler)",
    )
    args = parser.parse_args()
    run_loop(main(args.n, args.parts, args.sample))
