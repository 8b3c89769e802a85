"""Transactional latency while a bulk campaign is queued, against the same latency on
an idle pipeline measured in the same run.

    .venv/bin/python -m bench.lanes [--bulk 20000] [--tx 30] [--connections 8]

One run starts an embedded nats-server, the SMTP sink `bench.sink` in its own
process and every jetpost service in this process, then:

  (a) idle: `--tx` transactional sends one after another (each waits for its
      `delivered`): the pipeline's own latency, the raw limit here;
  (b) under backlog: `--bulk` bulk mails published as batch commands of 1000 (a
      campaign), then, once bulk mail is flowing to the sink, `--tx` transactional
      sends one every `--gap` seconds.

Latency is from the publish of a send command to its `delivered` event (stamped by
the sender right after the sink's 250). It prints p50/p99 of (a) and (b), their
ratio, and how much bulk was still waiting when the last transactional mail went:
(b) only proves the lanes if a backlog was there all along. Goal: p99(b) < 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from bench.measure import BenchError, Sink
from services.runner import SERVICES, build_env, run_services
from shared.embedded import EmbeddedNats
from shared.eventlog import history
from shared.events import parse_event
from shared.settings import load_settings
from shared.subjects import CMD_SEND, CMD_SEND_BATCH, CMD_STREAM, EVT_STREAM, event_filter

BATCH = 1000


def tx_command() -> dict[str, Any]:
    return {"to": "user@example.com", "subject": "Your password reset code",
            "text": "Code: 123456", "transactional": True,
            "message_id": f"tx-{uuid.uuid4().hex}"}  # fmt: skip


def bulk_batch(start: int, count: int) -> dict[str, Any]:
    return {"messages": [
        {"to": f"reader{i}@example.com", "subject": "Our November news", "tags": ["news"],
         "html": f"<h1>News</h1><p>Hello reader {i}</p>", "text": f"Hello reader {i}",
         "message_id": f"bulk-{i:06d}"}
        for i in range(start, start + count)
    ]}  # fmt: skip


class Deliveries:
    """Every `delivered` event as it is appended: when, per message."""

    def __init__(self) -> None:
        self.at: dict[str, datetime] = {}
        self.bulk = 0
        self.waiters: dict[str, asyncio.Event] = {}
        self.sent: dict[str, datetime] = {}

    async def on_msg(self, msg: Any) -> None:
        event = parse_event(msg.data)
        self.at[event.message_id] = event.occurred_at
        if event.message_id.startswith("bulk-"):
            self.bulk += 1
        if (waiter := self.waiters.pop(event.message_id, None)) is not None:
            waiter.set()

    async def wait(self, message_id: str, timeout: float) -> datetime:
        if message_id not in self.at:
            event = self.waiters.setdefault(message_id, asyncio.Event())
            if message_id not in self.at:
                await asyncio.wait_for(event.wait(), timeout)
        return self.at[message_id]


async def send_tx(js: Any, deliveries: Deliveries, timeout: float) -> float:
    command = tx_command()
    sent = datetime.now(UTC)
    await js.publish(CMD_SEND, json.dumps(command).encode(), stream=CMD_STREAM)
    delivered = await deliveries.wait(command["message_id"], timeout)
    deliveries.sent[command["message_id"]] = sent
    return (delivered - sent).total_seconds()


async def stages(js: Any, deliveries: Deliveries) -> str:
    """Where the slowest transactional mail spent its time: seconds after its publish."""
    mid, sent = max(deliveries.sent.items(), key=lambda kv: deliveries.at[kv[0]] - kv[1])
    steps = [f"{e.type} +{(e.occurred_at - sent).total_seconds():.3f}"
             for _, e in await history(js, mid)]  # fmt: skip
    return ", ".join(steps)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench(args: argparse.Namespace, tmp: Path) -> int:
    server = EmbeddedNats(store_dir=tmp / "nats")
    server.start()
    sink = await Sink.start()
    stop, started = asyncio.Event(), asyncio.Event()
    settings = load_settings(nats_url=server.url, smtp_url=f"smtp://127.0.0.1:{sink.port}",
                             smtp_pool_size=args.connections, data_dir=tmp / "data",
                             sender_from="bench <bench@example.com>")  # fmt: skip
    services = asyncio.create_task(
        run_services(build_env(settings), SERVICES, server.url, stop, started)
    )
    nc = None
    try:
        await asyncio.wait_for(started.wait(), 60)
        logging.getLogger("faststream").setLevel(logging.WARNING)
        logging.getLogger("jetpost").setLevel(logging.WARNING)
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        deliveries = Deliveries()
        await js.subscribe(event_filter("delivered"), stream=EVT_STREAM, ordered_consumer=True,
                           cb=deliveries.on_msg,
                           config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW))  # fmt: skip
        for _ in range(3):  # warm-up
            await send_tx(js, deliveries, 30)
        idle = [await send_tx(js, deliveries, 30) for _ in range(args.tx)]

        for start in range(0, args.bulk, BATCH):
            body = json.dumps(bulk_batch(start, min(BATCH, args.bulk - start))).encode()
            await js.publish(CMD_SEND_BATCH, body, stream=CMD_STREAM)
        deadline = time.monotonic() + 60
        while deliveries.bulk < 100:  # the campaign is flowing
            if time.monotonic() > deadline or services.done():
                raise BenchError("bulk mail did not start flowing within 60 s")
            await asyncio.sleep(0.1)

        async def later(delay: float) -> float:
            await asyncio.sleep(delay)
            return await send_tx(js, deliveries, 120)

        loaded = await asyncio.gather(*(later(i * args.gap) for i in range(args.tx)))
        waiting = args.bulk - deliveries.bulk
        slowest = await stages(js, deliveries)
    finally:
        if nc is not None:
            await nc.close()
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(services, 30)
        await sink.close()
        server.stop()
    print(f"jetpost lanes benchmark: bulk={args.bulk} tx={args.tx} gap={args.gap}s "
          f"connections={args.connections}")  # fmt: skip
    print("                                  p50 s   p99 s   max s")
    for name, values in (("(a) idle (raw limit)", idle), ("(b) under bulk backlog", loaded)):
        print(f"  {name:28} {pct(values, 0.5):7.3f} {pct(values, 0.99):7.3f} {max(values):7.3f}")
    print(f"  ratio b/a p50 {pct(loaded, .5) / pct(idle, .5):.2f}   "
          f"p99 {pct(loaded, .99) / pct(idle, .99):.2f}   goal p99(b) < 2 s "
          f"({'met' if pct(loaded, .99) < 2 else 'NOT met'})")  # fmt: skip
    print(f"  bulk still waiting when the last transactional mail went: {waiting} of "
          f"{args.bulk} (mean idle {statistics.mean(idle):.3f} s)")  # fmt: skip
    print(f"  slowest transactional mail: {slowest}")
    if waiting <= 0:
        print("  (no backlog left: (b) proves nothing; raise --bulk)")
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.lanes", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--bulk", type=int, default=20_000)
    p.add_argument("--tx", type=int, default=30)
    p.add_argument("--gap", type=float, default=0.2, help="seconds between transactional sends")
    p.add_argument("--connections", type=int, default=8)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="jetpost-bench-lanes-"))
    try:
        return asyncio.run(bench(args, tmp))
    except BenchError as exc:
        print(f"bench.lanes: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
