"""What `sync_interval: always` costs: JetStream publish rate with an fsync before every
ack, against the default (acked before fsync, flushed every 2 minutes), measured in the
same run on the same machine, on one node (R1) and on a 3-node cluster (R3).

    .venv/bin/python -m bench.sync_interval [--serial 1000] [--window 5000] [--runs 3]

Each run starts fresh servers (temp dirs, free loopback ports), creates MAIL_EVT from
nats/jetstream.yaml and publishes event-sized messages (1.5 KB, a `Nats-Msg-Id` each)
two ways: serially, as one handler appending its events does, and with 256 publishes
in flight, as the busy pipeline does. The figure to track is the ratio always/default
of the median of `--runs` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from nats.js import JetStreamContext

from shared.nats_connect import connect
from shared.nats_setup import apply_definitions, load_definitions
from shared.settings import load_settings
from tests.cluster.harness import NatsCluster, single_server

PAYLOAD = b"x" * 1500
WINDOW = 256
MODES = ("serial", "window")


@contextlib.contextmanager
def servers(replicas: int, always: bool, root: Path) -> Iterator[str]:
    jetstream = "sync_interval: always" if always else ""
    if replicas == 1:
        with single_server(root, "", jetstream=jetstream) as port:
            yield f"nats://127.0.0.1:{port}"
        return
    cluster = NatsCluster(root, jetstream=jetstream)
    try:
        cluster.start()
        yield cluster.urls
    finally:
        cluster.stop()


async def publish(js: JetStreamContext, n: int, window: int) -> float:
    """Messages per second for `n` publishes, at most `window` awaiting their ack."""
    run = uuid.uuid4().hex[:8]
    gate = asyncio.Semaphore(window)

    async def one(i: int) -> None:
        async with gate:
            await js.publish(f"mail.evt.b{run}{i}.bench", PAYLOAD,
                             headers={"Nats-Msg-Id": f"{run}:{i}"})  # fmt: skip

    started = time.perf_counter()
    if window == 1:
        for i in range(n):
            await one(i)
    else:
        await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - started)


async def one_run(replicas: int, always: bool, counts: dict[str, int]) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="jetpost-bench-sync-"))
    try:
        with servers(replicas, always, root) as url:
            settings = load_settings(nats_url=url, nats_replicas=replicas)
            nc = await connect(settings, name="bench")
            try:
                js = nc.jetstream(timeout=30)
                await apply_definitions(js, load_definitions(settings))
                await publish(js, 200, WINDOW)  # warm-up
                return {
                    "serial": await publish(js, counts["serial"], 1),
                    "window": await publish(js, counts["window"], WINDOW),
                }
            finally:
                await nc.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def main(counts: dict[str, int], runs: int) -> None:
    print(f"JetStream publish rate, msgs/s, median of {runs} runs "
          f"(serial: {counts['serial']}, {WINDOW} in flight: {counts['window']})")  # fmt: skip
    print(f"{'':14}{'mode':8}{'default':>10}{'always':>10}{'always/default':>16}")
    for replicas in (1, 3):
        rates: dict[tuple[bool, str], list[float]] = {}
        for _ in range(runs):
            for always in (False, True):  # interleaved: drift hits both alike
                for mode, rate in (await one_run(replicas, always, counts)).items():
                    rates.setdefault((always, mode), []).append(rate)
        for mode in MODES:
            default = statistics.median(rates[(False, mode)])
            always_rate = statistics.median(rates[(True, mode)])
            label = "R1, one node" if replicas == 1 else "R3, 3 nodes"
            print(f"{label:14}{mode:8}{default:>10,.0f}{always_rate:>10,.0f}"
                  f"{always_rate / default:>16.2f}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serial", type=int, default=1000)
    parser.add_argument("--window", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main({"serial": args.serial, "window": args.window}, args.runs))
