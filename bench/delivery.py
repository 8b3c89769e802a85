"""Delivery engine benchmarks, each figure a ratio measured in the same run.

1. mx:// vs smtp://: N mails to 5 local domains delivered directly (a local DNS
   responder, one aiosmtpd MX host per domain on its own loopback address) against
   the same N mails through smtp:// to one sink. ratio = rate(mx) / rate(smtp).
2. Throttle fairness: 500 mails to one domain limited to --slow-rate (20/s) plus 500
   to five other domains, against the same 500 others alone. ratio = time(others
   alone) / time(others beside the throttled domain). The throttled mail that is sent
   takes its share of the machine, so the best possible ratio is about
   1 - slow_rate / rate(others alone); the line prints both. Also: the throttled
   domain's observed rate against its limit.

    .venv/bin/python -m bench.delivery [--n 1000] [--runs 3] [--slow-rate 20]

Everything runs in this process except nats-server; every server started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nats

from services.capture import CaptureSink
from services.runner import SERVICES, build_env, run_services
from shared.embedded import EmbeddedNats
from shared.settings import load_settings
from shared.subjects import CMD_SEND, CMD_STREAM
from tests.delivery_peers import DnsResponder, refusing_port

DOMAINS = [f"d{i}.example" for i in range(5)]
SLOW = "slow.example"
WINDOW = 256  # publishes in flight


def command(to: str) -> bytes:
    body = {"to": to, "subject": "bench", "text": "hello " * 40, "message_id": uuid.uuid4().hex}
    return json.dumps(body).encode()


class World:
    """nats-server, 5 MX sinks (127.0.0.2-6, one port) and a DNS responder."""

    def __init__(self, folder: Path) -> None:
        self.nats = EmbeddedNats(store_dir=folder / "nats")
        self.port = refusing_port()
        self.sinks = [CaptureSink(None, host=f"127.0.0.{i + 2}", port=self.port) for i in range(5)]
        zone: dict[tuple[str, str], list[str]] = {}
        for i, domain in enumerate(DOMAINS):
            zone[(domain, "MX")] = [f"10 mx.{domain}."]
            zone[(f"mx.{domain}", "A")] = [f"127.0.0.{i + 2}"]
        self.dns = DnsResponder(zone)

    async def __aenter__(self) -> World:
        self.nats.start()
        for sink in self.sinks:
            await sink.start()
        await self.dns.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.dns.stop()
        for sink in self.sinks:
            await sink.stop()
        self.nats.stop()

    def received(self, domain: str | None = None) -> int:
        mails = [m for s in self.sinks for m in s.received]
        if domain is None:
            return len(mails)
        return sum(1 for m in mails if m.rcpt_tos[0].endswith("@" + domain))


async def publish(js: Any, bodies: Sequence[bytes]) -> None:
    for k in range(0, len(bodies), WINDOW):
        chunk = bodies[k : k + WINDOW]
        await asyncio.gather(*(js.publish(CMD_SEND, b, stream=CMD_STREAM) for b in chunk))


async def until(check: Any, timeout: float) -> float:
    """Seconds until `check()` is true (bounded polling)."""
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while True:
            if check():
                return time.monotonic() - start
            await asyncio.sleep(0.01)


async def run(world: World, folder: Path, overrides: dict[str, Any], work: Any) -> Any:
    settings = load_settings(nats_url=world.nats.url, data_dir=folder / "data",
                             sender_from="bench <bench@jetpost.test>", **overrides)  # fmt: skip
    stop, started = asyncio.Event(), asyncio.Event()
    services = asyncio.create_task(
        run_services(build_env(settings), SERVICES, world.nats.url, stop, started)
    )
    nc = await nats.connect(world.nats.url)
    try:
        await asyncio.wait_for(started.wait(), 60)
        logging.getLogger("faststream.access.nats").setLevel(logging.WARNING)
        return await work(nc.jetstream())
    finally:
        await nc.close()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(services, 30)


async def delivery_rate(kind: str, n: int) -> float:
    with tempfile.TemporaryDirectory(prefix="jetpost-bench-") as tmp:
        folder = Path(tmp)
        async with World(folder) as world:
            if kind == "mx":
                overrides = {"providers": "mx://", "dns_resolver": world.dns.address,
                             "mx_port": world.port}  # fmt: skip
            else:
                overrides = {"smtp_url": f"smtp://127.0.0.2:{world.port}"}

            async def work(js: Any) -> float:
                warm = 50
                await publish(js, [command(f"w{i}@{DOMAINS[i % 5]}") for i in range(warm)])
                await until(lambda: world.received() >= warm, 60)
                bodies = [command(f"u{i}@{DOMAINS[i % 5]}") for i in range(n)]
                start = time.monotonic()
                await publish(js, bodies)
                await until(lambda: world.received() >= warm + n, 300)
                return n / (time.monotonic() - start)

            rate: float = await run(world, folder, overrides, work)
            if world.received() != n + 50:
                raise RuntimeError(f"{world.received()} mails received for {n + 50} sent")
            return rate


async def fairness(with_slow: bool, slow_rate: int) -> tuple[float, float]:
    """(seconds for the 500 others, seconds for the 500 throttled ones or 0)."""
    with tempfile.TemporaryDirectory(prefix="jetpost-bench-") as tmp:
        folder = Path(tmp)
        limits = folder / "throttles.yaml"
        limits.write_text(f"{SLOW}: {{rate: {slow_rate}/s}}\n")
        async with World(folder) as world:
            overrides = {"smtp_url": f"smtp://127.0.0.2:{world.port}", "throttles": limits}

            async def work(js: Any) -> tuple[float, float]:
                others = [command(f"u{i}@{DOMAINS[i % 5]}") for i in range(500)]
                slow = [command(f"s{i}@{SLOW}") for i in range(500)] if with_slow else []
                mixed = [b for pair in zip(slow, others, strict=False) for b in pair] or others
                start = time.monotonic()
                await publish(js, mixed)
                await until(lambda: sum(world.received(d) for d in DOMAINS) >= 500, 300)
                t_others = time.monotonic() - start
                if not with_slow:
                    return t_others, 0.0
                await until(lambda: world.received(SLOW) >= 500, 300)
                return t_others, time.monotonic() - start

            result: tuple[float, float] = await run(world, folder, overrides, work)
            return result


async def main(n: int, runs: int, slow_rate: int) -> None:
    ratios, mx_rates, smtp_rates, fair, best, slow_rates = [], [], [], [], [], []
    for i in range(runs):
        smtp = await delivery_rate("smtp", n)
        mx = await delivery_rate("mx", n)
        alone, _ = await fairness(False, slow_rate)
        beside, slow = await fairness(True, slow_rate)
        smtp_rates.append(smtp)
        mx_rates.append(mx)
        ratios.append(mx / smtp)
        fair.append(alone / beside)
        best.append(max(1 - slow_rate / (500 / alone), 0.0))
        slow_rates.append(500 / slow)
        print(f"run {i + 1}: smtp {smtp:7.1f}/s  mx {mx:7.1f}/s  ratio {mx / smtp:.2f} | "
              f"others alone {alone:5.2f}s beside throttled {beside:5.2f}s "
              f"ratio {alone / beside:.2f} (best {best[-1]:.2f}) | throttled "
              f"{500 / slow:5.1f}/s (limit {slow_rate}/s)", flush=True)  # fmt: skip
    med = statistics.median
    print(f"median of {runs}: smtp:// {med(smtp_rates):.1f}/s, mx:// {med(mx_rates):.1f}/s, "
          f"ratio mx/smtp {med(ratios):.2f}; fairness ratio {med(fair):.2f} (best "
          f"{med(best):.2f}); throttled {med(slow_rates):.1f}/s, limit {slow_rate}/s")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--slow-rate", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # not one DKIM warning per run
    asyncio.run(main(args.n, args.runs, args.slow_rate))
