"""End-to-end send throughput of jetpost, against the raw SMTP limit of the same machine.

Why: a rate on its own says little on a shared, noisy machine. This measures, in one
run and against the same SMTP sink process,

  (a) the raw limit: pre-built mails sent with plain aiosmtplib over `--connections`
      persistent connections (no NATS, no rendering, no event log), and
  (b) jetpost: `--n` send commands published to `mail.cmd.send`, taken through
      intake, renderer and sender (all three in this process, as `jetpost dev` runs
      them) to the same sink over an SMTP pool of the same size,

and reports b/a. The goal is b/a >= 0.8: jetpost's bookkeeping (four events per
mail in JetStream, template rendering) should cost less than a fifth of the rate
the SMTP client alone reaches. It is a measurement, not a test: the exit status is
0 whatever the ratio, and non-zero only when mail is lost, something times out, or
the `delivered` events in MAIL_EVT do not match what the sink received.

The sink (`bench.sink`) runs in its own process so that its CPU is not taken from
the measured client, and stamps the arrival of each mail itself: a phase ends when
the sink accepted its last mail, not when this (busy) process notices.

    .venv/bin/python -m bench.e2e_send [--n 3000] [--connections 8] [--profile FILE] [--sample]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import nats.errors

from bench.jetpost_phase import jetpost_running
from bench.log_floor import Smtp, floor_phase
from bench.measure import BenchError, Phase, Sink, Watch
from bench.raw_smtp import build_mail, raw_sender
from shared.collector import freeze_start_up
from shared.embedded import EmbeddedNats
from shared.event_loop import run_loop

GOAL = 0.8


# -- the run --------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    raws: list[Phase]  # (a), one per round
    jets: list[Phase]  # (b), one per round, each right after the round's (a)
    extra: int  # mails the sink got beyond those sent
    floor: Phase  # (c), bench/log_floor.py
    celerys: list[Phase] = field(default_factory=list)  # (d), with --celery

    @property
    def ratios(self) -> list[float]:
        return [jet.rate / raw.rate for raw, jet in zip(self.raws, self.jets, strict=True)]


def blocks(n: int, rounds: int) -> list[int]:
    """`n` mails in `rounds` blocks of (nearly) equal size."""
    return [n // rounds + (1 if k < n % rounds else 0) for k in range(rounds)]


async def bench(args: argparse.Namespace, server: EmbeddedNats, tmp: Path) -> Figures:
    """(a) and (b) alternate, round by round, so that a machine whose speed drifts
    meets both alike; each round's ratio is its own."""
    assert server.process is not None
    # the GC setting every jetpost process runs with (shared/collector.py), also for
    # the raw client: the same process settings on both sides
    freeze_start_up(collect=False)
    sink = await Sink.start()
    pids = {"sink": sink.process.pid, "nats-server": server.process.pid}
    jet_pids = dict(pids)  # with --processes, the jetpost children's too
    raws: list[Phase] = []
    jets: list[Phase] = []
    celerys: list[Phase] = []
    rounds = 1 if args.sample or args.profile else args.rounds
    try:
        base = (await sink.stats()).count
        async with (
            raw_sender(sink, args.connections, args.warmup, args.timeout) as raw,
            jetpost_running(sink, server.url, tmp / "data", args.connections, args.warmup,
                            args.timeout, jet_pids, args.processes, args.workers) as jet,
            _peer(args, sink) as peer,
        ):  # fmt: skip
            for size in blocks(args.n, rounds):
                raws.append(await raw.block(size, Watch("(a)", pids, sample=args.sample)))
                watch = Watch("(b)", jet_pids, profile=args.profile, sample=args.sample)
                jets.append(await jet.block(size, watch))
                if peer is not None:
                    celerys.append(await peer.block(size, Watch("(d)", peer.pids)))
            await jet.verify()
            extra = (await sink.stats()).count - base - raw.sent - jet.published
            extra -= peer.sent if peer is not None else 0
        floor = await _floor(args, server, sink)
    finally:
        await sink.close()
    return Figures(raws, jets, extra, floor, celerys)


@contextlib.asynccontextmanager
async def _peer(args: argparse.Namespace, sink: Sink) -> AsyncIterator[Any]:
    """(d), the Celery peer, with --celery (imported only then: it needs Celery)."""
    if not args.celery:
        yield None
        return
    from bench.celery_peer import celery_peer

    async with celery_peer(sink, args.warmup, args.timeout) as peer:
        yield peer


async def _floor(args: argparse.Namespace, server: EmbeddedNats, sink: Sink) -> Phase:
    """(c): the log and the SMTP conversation alone, after the rounds."""
    nc = await nats.connect(server.url)
    smtp = await Smtp.connect(sink.port, args.connections, bytes(build_mail(0)))
    try:
        seconds, cpu = await floor_phase(nc, args.n, args.warmup, args.timeout, smtp)
    finally:
        smtp.close()
        await nc.close()
    return Phase("floor", args.n, seconds, 0, {"bench process": cpu})


def total(phases: Sequence[Phase]) -> Phase:
    """The rounds' blocks of one phase as one."""
    cpu: dict[str, float] = {}
    for phase in phases:
        for name, seconds in phase.cpu.items():
            cpu[name] = cpu.get(name, 0.0) + seconds
    return Phase(phases[0].name, sum(p.mails for p in phases), sum(p.seconds for p in phases),
                 sum(p.bytes for p in phases), cpu)  # fmt: skip


def table(args: argparse.Namespace, figures: Figures) -> str:
    raw, jet, floor = total(figures.raws), total(figures.jets), figures.floor
    ratios = figures.ratios
    ratio = statistics.median(ratios)
    verdict = "met" if ratio >= GOAL else "NOT met"
    rows = [
        f"jetpost e2e send benchmark: N={args.n} connections={args.connections} "
        f"warm-up={args.warmup} rounds={len(ratios)} cpus={os.cpu_count()}",
        f"  {'':34} {'mails':>6} {'seconds':>8} {'mails/s':>9} {'bytes/mail':>10}",
    ]
    phases = (("rate_a  raw aiosmtplib -> sink", raw), ("rate_b  jetpost end-to-end", jet))
    for label, phase in phases:
        rows.append(
            f"  {label:34} {phase.mails:6d} {phase.seconds:8.3f} {phase.rate:9.1f} "
            f"{phase.avg_bytes:10d}"
        )
    rows.append(f"  {'ratio b/a, median of the rounds':34} {'':6} {'':8} {ratio:9.2f}   "
                f"goal >= {GOAL} ({verdict})")  # fmt: skip
    if len(ratios) > 1:
        rows.append(f"  each round's b/a: {' '.join(f'{r:.2f}' for r in ratios)}")
    rows.append(f"  delivered events verified: {args.warmup + args.n} (warm-up + N)")
    if figures.extra:
        rows.append(f"  WARNING: the sink got {figures.extra} more mails than sent (duplicates)")
    rows.append("  CPU per mail in ms (busy share of one core) during each measured phase:")
    for label, phase in phases:
        cells = [
            f"{name} {1000 * cpu / phase.mails:5.2f} ({100 * cpu / phase.seconds:3.0f}%)"
            for name, cpu in phase.cpu.items()
        ]
        rows.append(f"    {label[:6]}  " + "   ".join(cells))
    mine = [cpu for name, cpu in jet.cpu.items() if name.startswith(("jetpost", "worker"))]
    spent = sum(mine) if mine else jet.cpu["bench process"]
    where = f"{len(mine)} jetpost processes" if mine else "bench process, publisher included"
    rows.append(f"  jetpost CPU per delivered mail: {1000 * spent / jet.mails:.2f} ms ({where}); "
                f"raw client {1000 * raw.cpu['bench process'] / raw.mails:.2f} ms")  # fmt: skip
    r, f = (phase.cpu["bench process"] / phase.mails for phase in (raw, floor))
    rows.append(f"  (c) the log + SMTP alone (bench/log_floor.py): {floor.rate:.0f} mails/s "
                f"(c/a {floor.rate / raw.rate:.2f}), {1000 * f:.2f} ms CPU per mail")  # fmt: skip
    rows.append(f"      so one process cannot pass b/a = raw CPU / floor CPU = {r / f:.2f}")
    if figures.celerys:
        peer = total(figures.celerys)
        each = [j.rate / c.rate for j, c in zip(figures.jets, figures.celerys, strict=True)]
        rows.append(f"  (d) Celery + Redis + smtplib (bench/celery_peer.py): "
                    f"{peer.rate:.0f} mails/s, d/a {peer.rate / raw.rate:.2f}")  # fmt: skip
        cells = [f"{name} {1000 * cpu / peer.mails:5.2f}" for name, cpu in peer.cpu.items()
                 if name not in ("sink", "nats-server")]  # fmt: skip
        rows.append(f"      CPU per mail in ms: {'   '.join(cells)}")
        times = statistics.median(each)
        rows.append(f"  ratio b/d, median of the rounds: {times:.2f}   "
                    f"goal >= 3 ({'met' if times >= 3 else 'NOT met'}); "
                    f"each round's: {' '.join(f'{x:.2f}' for x in each)}")  # fmt: skip
    return "\n".join(rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.e2e_send", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--n", type=int, default=3000, help="mails per measured phase")
    p.add_argument("--rounds", type=int, default=3,
                   help="(a) and (b) alternate in this many blocks of N/rounds mails; b/a is "
                        "the median of the rounds' (1 with --sample or --profile)")  # fmt: skip
    p.add_argument("--connections", type=int, default=8, help="SMTP connections (= pool size)")
    p.add_argument("--warmup", type=int, default=100, help="mails before each measured phase")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the sink")
    p.add_argument("--profile", type=Path, help="cProfile phase (b) into this file")
    p.add_argument(
        "--sample", action="store_true", help="sample both phases' stacks (bench.sampler)"
    )
    p.add_argument("--celery", action="store_true",
                   help="also (d): Celery + Redis + smtplib to the same sink in the same "
                        "rounds (bench/celery_peer.py; needs redis-server and "
                        "bench/requirements-peer.txt)")  # fmt: skip
    p.add_argument("--processes", type=int, default=0,
                   help="run intake, renderer and sender in N `jetpost run` processes (0: in "
                        "this one); their connections share --connections")  # fmt: skip
    p.add_argument("--workers", type=int, default=1,
                   help="JETPOST_PIPELINE_WORKERS of each `jetpost run` process (implies "
                        "--processes 1 at least): with 2, the sender runs in a worker of its "
                        "own (services/cli/pipeline_workers.py)")  # fmt: skip
    args = p.parse_args(argv)
    if args.workers > 1:
        args.processes = max(args.processes, 1)
    if min(args.n, args.connections, args.warmup, args.rounds, args.workers) < 1:
        p.error("--n, --connections, --warmup, --rounds and --workers must be at least 1")
    if args.rounds > args.n:
        p.error("--rounds must be at most --n")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="jetpost-bench-"))
    server = EmbeddedNats(store_dir=tmp / "nats")
    try:
        server.start()
        figures = run_loop(bench(args, server, tmp))
    except (BenchError, TimeoutError) as exc:
        print(f"bench.e2e_send: FAILED: {exc!r}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench.e2e_send: interrupted", file=sys.stderr)
        return 130
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(table(args, figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
