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
import asyncio
import contextlib
import cProfile
import email.policy
import io
import json
import logging
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, TypeVar

import aiosmtplib
import nats
import nats.errors

from bench.sampler import Sampler
from services.runner import SERVICES, build_env, run_services
from shared.collector import freeze_start_up
from shared.embedded import EmbeddedNats
from shared.event_loop import run_loop
from shared.settings import load_settings
from shared.subjects import CMD_SEND, CMD_STREAM, EVT_STREAM, event_filter

ROOT = Path(__file__).resolve().parent.parent
GOAL = 0.8
PUBLISH_WINDOW = 256  # send commands in flight at once
SENDER = "bench <bench@example.com>"

T = TypeVar("T")


class BenchError(Exception):
    """Lost mail, a timeout or a crashed service: the figures would mean nothing."""


@dataclass(frozen=True)
class Phase:
    name: str
    mails: int
    seconds: float
    bytes: int  # as received by the sink
    cpu: dict[str, float]  # CPU seconds used during the phase, per process

    @property
    def rate(self) -> float:
        return self.mails / self.seconds

    @property
    def avg_bytes(self) -> int:
        return self.bytes // self.mails


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of another process so far (Linux /proc); 0.0 if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()  # after "(comm)", which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Watch:
    """CPU meters (always) and profilers (when asked for) around one measured phase."""

    label: str
    pids: dict[str, int]  # other processes to meter, by name
    profile: Path | None = None
    sample: bool = False
    _cpu: dict[str, float] = field(default_factory=dict)
    _profiler: cProfile.Profile | None = None
    _sampler: Sampler | None = None

    def start(self) -> None:
        if self.sample:
            self._sampler = Sampler()
            self._sampler.start()
        if self.profile is not None:
            self._profiler = cProfile.Profile()
            self._profiler.enable()
        self._cpu = self._read()

    def stop(self) -> dict[str, float]:
        end = self._read()
        if self._profiler is not None:
            self._profiler.disable()
            assert self.profile is not None
            _report_profile(self._profiler, self.profile, self.label)
        if self._sampler is not None:
            self._sampler.stop()
            print(f"== sampled profile of phase {self.label}", file=sys.stderr)
            print(self._sampler.report(), file=sys.stderr)
        return {name: end[name] - self._cpu[name] for name in end}

    def _read(self) -> dict[str, float]:
        cpu = {"bench process": time.process_time()}
        cpu.update({name: cpu_seconds(pid) for name, pid in self.pids.items()})
        return cpu


@dataclass(frozen=True)
class SinkState:
    count: int
    bytes: int
    stamp: float = 0.0  # time.monotonic() when the awaited mail arrived


class Sink:
    """The `bench.sink` child process and its line protocol (see that module)."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port

    @classmethod
    async def start(cls, timeout: float = 20.0) -> Sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.sink", "--port", "0",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )  # fmt: skip
        sink = cls(process, 0)
        try:
            words = await sink._read(timeout)
            if words[:1] != ["ready"]:
                raise BenchError(f"sink: unexpected first line {words!r}")
        except BaseException:
            await sink.close()
            raise
        sink.port = int(words[1])
        return sink

    async def wait(self, count: int, timeout: float) -> SinkState:
        """Until the sink holds `count` mails in all; the stamp is the count-th's arrival."""
        words = await self._ask(f"wait {count} {timeout}", timeout + 10)
        if words[0] != "done":
            raise BenchError(
                f"sink has {words[1]} of {count} mails after {timeout}s: mail lost "
                "(or too slow for --timeout)"
            )
        return SinkState(int(words[1]), int(words[3]), float(words[2]))

    async def stats(self) -> SinkState:
        words = await self._ask("stats", 10)
        return SinkState(int(words[1]), int(words[2]))

    async def close(self) -> None:
        process = self.process
        if process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()  # end of input: the sink stops by itself
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def _ask(self, line: str, timeout: float) -> list[str]:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        return await self._read(timeout)

    async def _read(self, timeout: float) -> list[str]:
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            raise BenchError(f"sink did not answer within {timeout}s") from None
        if not line:
            raise BenchError(f"sink exited (status {await self.process.wait()})")
        return line.decode().split()


# -- (a) raw aiosmtplib ---------------------------------------------------------------

_HTML = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
</head>
<body style="margin: 0; padding: 24px; background: #f4f5f7; \
font-family: Helvetica, Arial, sans-serif;">
<div class="card" style="max-width: 480px; margin: 0 auto; padding: 32px; \
background: #ffffff; border-radius: 8px;">
  <h1 style="margin: 0 0 16px; font-size: 22px; color: #1f2937;">Welcome, {name}!</h1>
  <p style="margin: 0 0 12px; font-size: 15px; line-height: 1.5; color: #374151;">\
Your account is ready. We're glad to have you on board.</p>
  <p style="margin: 0 0 12px; font-size: 15px; line-height: 1.5; color: #374151;">\
If you have any questions, just reply to this email.</p>
  <p class="muted" style="margin: 0 0 12px; line-height: 1.5; color: #9ca3af; \
font-size: 13px;">The jetpost team</p>
</div>
</body>
</html>
"""

_TEXT = """Welcome, {name}!

Your account is ready. We're glad to have you on board.
If you have any questions, just reply to this email.

The jetpost team
"""


def build_mail(i: int) -> EmailMessage:
    """Shaped like jetpost's rendering of the `welcome` template (same headers, both
    parts, inlined CSS), so that both phases put about the same bytes on the wire."""
    name = f"User {i}"
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = SENDER
    msg["To"] = f"user{i}@example.com"
    msg["Subject"] = f"Welcome to jetpost, {name}!"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["MIME-Version"] = "1.0"
    msg["Message-ID"] = make_msgid(uuid.uuid4().hex, domain="example.com")
    msg.set_content(_TEXT.format(name=name), subtype="plain", charset="utf-8")
    msg.add_alternative(_HTML.format(name=name), subtype="html", charset="utf-8")
    return msg


Mail = tuple[EmailMessage, list[str]]  # with its envelope recipients, as jetpost has them


def _mails(numbers: range) -> list[Mail]:
    return [(build_mail(i), [f"user{i}@example.com"]) for i in numbers]


async def _send_shares(clients: Sequence[aiosmtplib.SMTP], mails: Sequence[Mail]) -> None:
    """Each connection sends its share serially; the connections run side by side."""

    async def send_share(client: aiosmtplib.SMTP, share: Sequence[Mail]) -> None:
        for mail, recipients in share:
            await client.send_message(mail, sender="bench@example.com", recipients=recipients)

    step = len(clients)
    await asyncio.gather(*(send_share(c, mails[k::step]) for k, c in enumerate(clients)))


@dataclass
class RawSender:
    """(a): `connections` aiosmtplib clients, connected and warmed up."""

    sink: Sink
    clients: list[aiosmtplib.SMTP]
    timeout: float
    sent: int = 0  # mails numbered so far (each block sends new ones)

    async def block(self, n: int, watch: Watch) -> Phase:
        mails = _mails(range(self.sent, self.sent + n))
        self.sent += n
        before = await self.sink.stats()
        watch.start()
        start = time.monotonic()
        await _send_shares(self.clients, mails)
        after = await self.sink.wait(before.count + n, self.timeout)
        cpu = watch.stop()
        return Phase("raw", n, after.stamp - start, after.bytes - before.bytes, cpu)


@contextlib.asynccontextmanager
async def raw_sender(
    sink: Sink, connections: int, warmup: int, timeout: float
) -> AsyncIterator[RawSender]:
    clients = [
        aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, timeout=30)
        for _ in range(connections)
    ]
    try:
        await asyncio.gather(*(c.connect() for c in clients))
        sender = RawSender(sink, clients, timeout, sent=warmup)
        base = (await sink.stats()).count
        await _send_shares(clients, _mails(range(warmup)))
        await sink.wait(base + warmup, timeout)
        yield sender
    finally:
        for client in clients:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
            client.close()


# -- (b) jetpost end to end -----------------------------------------------------------


def _command(i: int) -> bytes:
    return json.dumps(
        {
            "to": f"user{i}@example.com",
            "template": "welcome",
            "vars": {"name": f"User {i}"},
            "message_id": uuid.uuid4().hex,
        }
    ).encode()


async def _publish(
    js: Any, bodies: Sequence[bytes], subject: str = CMD_SEND, stream: str = CMD_STREAM
) -> None:
    """PUBLISH_WINDOW commands in flight at a time, each acked."""
    for k in range(0, len(bodies), PUBLISH_WINDOW):
        chunk = bodies[k : k + PUBLISH_WINDOW]
        await asyncio.gather(*(js.publish(subject, b, stream=stream) for b in chunk))


async def delivered_count(nc: Any) -> int:
    """Messages with a `delivered` event in MAIL_EVT (distinct subjects), read page by
    page: the server lists a limited number of subjects per STREAM.INFO reply."""
    subjects: set[str] = set()
    while True:
        request = {"subjects_filter": event_filter("delivered"), "offset": len(subjects)}
        reply = await nc.request(
            f"$JS.API.STREAM.INFO.{EVT_STREAM}", json.dumps(request).encode(), timeout=10
        )
        info = json.loads(reply.data)
        if "error" in info:
            raise BenchError(f"STREAM.INFO {EVT_STREAM}: {info['error']}")
        page = info.get("state", {}).get("subjects") or {}
        subjects.update(page)
        if not page or len(subjects) >= info.get("total", 0):
            return len(subjects)


async def _guarded(work: Awaitable[T], services: asyncio.Task[None]) -> T:
    """`work`, unless the services stop first (then their error, or a BenchError)."""
    job = asyncio.ensure_future(work)
    try:
        await asyncio.wait([job, services], return_when=asyncio.FIRST_COMPLETED)
        if job.done():
            return job.result()
        services.result()  # raises what stopped them
        raise BenchError("services stopped during the run")
    finally:
        if not job.done():
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError, BenchError):
                await job


async def _await_delivered(nc: Any, expected: int, services: asyncio.Task[None]) -> int:
    """The sink has a mail before its `delivered` event is appended: allow a moment."""
    deadline = time.monotonic() + 30
    while True:
        count = await _guarded(delivered_count(nc), services)
        if count >= expected or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.1)


PIPELINE = ("intake", "renderer", "sender")


async def _until_pulling(nats_url: str, processes: int, children: Sequence[Any]) -> None:
    """Until every process asks the sender's consumer for mail (or one exits)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(child.returncode is not None for child in children):
                raise BenchError("a jetpost process exited while starting")
            with contextlib.suppress(nats.errors.Error):
                if (await js.consumer_info(EVT_STREAM, "sender")).num_waiting >= processes:
                    return
            await asyncio.sleep(0.2)
        raise BenchError("the jetpost processes did not start within 60 s")
    finally:
        await nc.close()


async def _child_services(
    env: dict[str, str], processes: int, stop: asyncio.Event, started: asyncio.Event,
    pids: dict[str, int],
) -> None:  # fmt: skip
    """`jetpost run intake renderer sender` in `processes` child processes, sharing the
    durable consumers, until `stop`; an exit before that is an error."""
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli.main", "run", *PIPELINE, env=env, cwd=ROOT
        )
        for _ in range(processes)
    ]
    for k, child in enumerate(children):
        pids[f"jetpost {k + 1}"] = child.pid
    try:
        await _until_pulling(env["JETPOST_NATS_URL"], processes, children)
        started.set()
        waits = [asyncio.ensure_future(child.wait()) for child in children]
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([*waits, stopped], return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            raise BenchError(f"a jetpost process exited ({[c.returncode for c in children]})")
    finally:
        for child in children:
            if child.returncode is None:
                child.terminate()
        for child in children:
            try:
                await asyncio.wait_for(child.wait(), 15)
            except TimeoutError:
                child.kill()
                await child.wait()


@dataclass
class Jetpost:
    """(b): the pipeline running and warmed up; `published` commands so far."""

    sink: Sink
    nc: Any
    services: asyncio.Task[None]
    timeout: float
    published: int

    async def block(self, n: int, watch: Watch) -> Phase:
        bodies = [_command(i) for i in range(self.published, self.published + n)]
        self.published += n
        before = await self.sink.stats()
        js = self.nc.jetstream()
        watch.start()
        start = time.monotonic()
        await _guarded(_publish(js, bodies), self.services)
        after = await _guarded(self.sink.wait(before.count + n, self.timeout), self.services)
        cpu = watch.stop()
        return Phase("jetpost", n, after.stamp - start, after.bytes - before.bytes, cpu)

    async def verify(self) -> None:
        """Every command has its `delivered` event in MAIL_EVT."""
        delivered = await _await_delivered(self.nc, self.published, self.services)
        if delivered != self.published:
            raise BenchError(
                f"{delivered} `delivered` events in {EVT_STREAM} for {self.published} mails sent"
            )


@contextlib.asynccontextmanager
async def jetpost_running(
    sink: Sink,
    nats_url: str,
    data_dir: Path,
    connections: int,
    warmup: int,
    timeout: float,
    pids: dict[str, int],
    processes: int = 0,
) -> AsyncIterator[Jetpost]:
    """Intake, renderer and sender in this process (or `processes` children, whose
    pids are added to `pids`), warmed up with `warmup` mails."""
    pool = max(1, connections // max(processes, 1))  # the same connections in all
    settings = load_settings(
        nats_url=nats_url,
        smtp_url=f"smtp://127.0.0.1:{sink.port}",
        smtp_pool_size=pool,
        data_dir=data_dir,
        sender_from=SENDER,
    )
    stop, started = asyncio.Event(), asyncio.Event()
    if processes:
        env = {**os.environ, "JETPOST_NATS_URL": nats_url, "JETPOST_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
               "JETPOST_SMTP_POOL_SIZE": str(pool), "JETPOST_DATA_DIR": str(data_dir),
               "JETPOST_SENDER_FROM": SENDER, "JETPOST_LOG_LEVEL": "WARNING"}  # fmt: skip
        services = asyncio.create_task(_child_services(env, processes, stop, started, pids))
    else:
        services = asyncio.create_task(
            run_services(build_env(settings), SERVICES, nats_url, stop, started)
        )
    nc = None
    try:
        await _guarded(asyncio.wait_for(started.wait(), 30), services)
        # FastStream's INFO lines ("callback for Task-N is being executed...") would
        # end up between the figures; its warnings and errors still show.
        logging.getLogger("faststream.access.nats").setLevel(logging.WARNING)
        nc = await nats.connect(nats_url, max_reconnect_attempts=1)
        base = (await sink.stats()).count
        await _guarded(_publish(nc.jetstream(), [_command(i) for i in range(warmup)]), services)
        await _guarded(sink.wait(base + warmup, timeout + 30), services)
        if (got := await _await_delivered(nc, warmup, services)) != warmup:
            raise BenchError(f"warm-up: {got} delivered events for {warmup} mails")
        yield Jetpost(sink, nc, services, timeout, warmup)
    finally:
        if nc is not None:
            await nc.close()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(services, 30)


def _report_profile(profiler: cProfile.Profile, path: Path, label: str) -> None:
    profiler.dump_stats(path)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    print(out.getvalue(), file=sys.stderr)
    print(f"cProfile of phase {label} written to {path} (it slows the phase)", file=sys.stderr)


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
                            args.timeout, jet_pids, args.processes) as jet,
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
    from bench.log_floor import Smtp, floor_phase  # it builds on this module

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
    mine = [cpu for name, cpu in jet.cpu.items() if name.startswith("jetpost")]
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
    args = p.parse_args(argv)
    if args.n < 1 or args.connections < 1 or args.warmup < 1 or not 1 <= args.rounds <= args.n:
        p.error("--n, --connections, --warmup and --rounds must be at least 1, --rounds at most N")
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
