"""HTTP API benchmark: `GET /v1/messages/{id}` and `POST /v1/messages` under
`--concurrency` keep-alive clients, against `jetpost run api` in its own process(es),
beside the raw limits measured in the same run:

- `raw asyncio`: a bare asyncio HTTP responder (bench.raw_http): the ceiling of a
  Python server on this machine with this client;
- `raw litestar`: a one-route Litestar app served as the API is (same server, loop and
  HTTP parser): the framework's floor, so `GET / litestar` says what jetpost adds;
- `raw psycopg`: the GET's query (`SELECT * FROM messages WHERE id = $1`) from
  `--concurrency` connections, one after another each: the database's side of a GET;
- `raw publish`: awaited JetStream publishes with a `Nats-Msg-Id`, from
  `--concurrency` tasks: the ack round trip a 202 waits for.

The load generator (bench.http_load) runs in its own process; its CPU is reported, so
a client near 100% of a core says the figure is the client's, not the server's.

    .venv/bin/python -m bench.api [--messages 10000] [--requests 3000] [--runs 3]
                                  [--concurrency 16] [--workers 1,2]

POST sends a template mail (`welcome`) without an idempotency key, then (`POST+key`)
with a distinct `Idempotency-Key` per request (one more KV round trip each). Every
202 means the command is in MAIL_CMD; the stream's message count is checked at the
end. Intake is not running: what is measured is the API alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.http_load import percentile
from bench.measure import ROOT, cpu_seconds, stop_process
from bench.replay import fill, wait_ready
from bench.stack import embedded_stack
from projections.replay import replay
from projections.runner import PROJECTIONS
from services.api.keys import create_key
from shared.embedded import EmbeddedNats, free_port
from shared.subjects import CMD_STREAM

SEND_BODY = json.dumps({"to": "Bench <bench@example.com>", "template": "welcome",
                        "vars": {"name": "Bench"}, "tags": ["bench"]})  # fmt: skip


@dataclass
class Result:
    rps: float
    p50: float
    p99: float
    server_cpu: float = 0.0  # busy share of one core, server process(es)
    client_cpu: float = 0.0
    nats_cpu: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class Rows:
    results: dict[str, list[Result]] = field(default_factory=dict)

    def add(self, name: str, result: Result) -> None:
        self.results.setdefault(name, []).append(result)

    def median(self, name: str) -> Result:
        runs = self.results[name]
        fields = ("rps", "p50", "p99", "server_cpu", "client_cpu", "nats_cpu")
        return Result(*(statistics.median(getattr(r, f) for r in runs) for f in fields))


def _python() -> str:
    return sys.executable


async def load(spec: dict[str, Any], pids: dict[str, int]) -> Result:
    """One measured phase by bench.http_load in its own process; CPU of `pids` metered."""
    client = await asyncio.create_subprocess_exec(
        _python(), "-m", "bench.http_load", cwd=ROOT,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.perf_counter()
    out, _ = await client.communicate(json.dumps(spec).encode())
    wall = time.perf_counter() - started
    used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    if client.returncode != 0:
        raise RuntimeError(f"the load generator failed ({client.returncode})")
    got = json.loads(out)
    if got["errors"]:
        raise RuntimeError(f"unexpected answers: {got['errors']}")
    # over the client's whole run (warm-up and start-up included): a slight underestimate
    server = sum(v for k, v in used.items() if k.startswith("server"))
    return Result(got["rps"], got["p50_ms"], got["p99_ms"], server_cpu=server / wall,
                  client_cpu=got["cpu_s"] / got["seconds"],
                  nats_cpu=used.get("nats", 0.0) / wall)  # fmt: skip


@asynccontextmanager
async def process(*argv: str, env: dict[str, str] | None = None, quiet: bool = True) -> Any:
    """A child process for the block, stopped at its end (`quiet`: no output)."""
    out = subprocess.DEVNULL if quiet else None
    proc = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        await stop_process(proc, 10)


async def ready(port: int, proc: asyncio.subprocess.Process, path: str = "/healthz") -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        if path == "/healthz":
            await wait_ready(client, proc)
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError("the raw server exited")
            try:
                await client.get(path)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        raise RuntimeError("the raw server did not come up")


def spec(port: int, args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    return {"port": port, "requests": args.requests, "warmup": args.requests // 10,
            "concurrency": args.concurrency, **extra}  # fmt: skip


@dataclass
class Target:
    """A server under load: its port and the processes whose CPU is its."""

    name: str
    port: int
    pids: dict[str, int]


async def start_raw(kind: str, stack: AsyncExitStack) -> Target:
    port = free_port()
    proc = await stack.enter_async_context(
        process(_python(), "-m", "bench.raw_http", kind, str(port))
    )
    await ready(port, proc, "/")
    return Target(f"raw {kind}", port, {"server": proc.pid})


async def raw_psycopg(database_url: str, ids: list[str], args: argparse.Namespace) -> Result:
    conns = [await psycopg.AsyncConnection.connect(database_url, autocommit=True)
             for _ in range(args.concurrency)]  # fmt: skip
    latencies: list[float] = []

    async def worker(conn: psycopg.AsyncConnection[Any], mine: list[str]) -> None:
        for mid in mine:
            started = time.perf_counter()
            cur = await conn.execute("SELECT * FROM messages WHERE id = %s", (mid,))
            await cur.fetchone()
            latencies.append(time.perf_counter() - started)

    try:
        n = args.requests
        await asyncio.gather(*(worker(c, ids[i : n // 10 : args.concurrency])
                               for i, c in enumerate(conns)))  # fmt: skip
        latencies.clear()
        cpu, began = time.process_time(), time.perf_counter()
        await asyncio.gather(
            *(worker(c, ids[i : n : args.concurrency]) for i, c in enumerate(conns))
        )
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu
    finally:
        for conn in conns:
            await conn.close()
    return _summary(latencies, elapsed, cpu)


async def raw_publish(js: Any, args: argparse.Namespace, run: int) -> Result:
    name = f"BENCH_RAW{run}"
    await js.add_stream(name=name, subjects=[f"bench.raw{run}"])
    payload = SEND_BODY.encode()
    latencies: list[float] = []

    async def worker(numbers: range) -> None:
        for i in numbers:
            started = time.perf_counter()
            await js.publish(f"bench.raw{run}", payload, headers={"Nats-Msg-Id": f"raw-{i}"})
            latencies.append(time.perf_counter() - started)

    n, c = args.requests, args.concurrency
    await asyncio.gather(*(worker(range(i, n // 10, c)) for i in range(c)))
    latencies.clear()
    cpu, began = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(range(n + i, 2 * n, c)) for i in range(c)))
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu
    await js.delete_stream(name)
    return _summary(latencies, elapsed, cpu)


def _summary(latencies: list[float], elapsed: float, cpu: float) -> Result:
    latencies.sort()
    p50, p99 = (percentile(latencies, q) * 1000 for q in (0.5, 0.99))
    return Result(len(latencies) / elapsed, p50, p99, client_cpu=cpu / elapsed)


def _sample_file(sample: str | None, workers: int) -> str | None:
    return f"{sample}.x{workers}" if sample else None


def api_env(server: EmbeddedNats, database_url: str, tmp: Path, port: int,
            workers: int) -> dict[str, str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETPOST_")}
    env.update(
        JETPOST_NATS_URL=server.url, JETPOST_DATABASE_URL=database_url,
        JETPOST_API_PORT=str(port), JETPOST_DATA_DIR=str(tmp), JETPOST_LOG_LEVEL="WARNING",
        JETPOST_API_WORKERS=str(workers), JETPOST_TEMPLATE_DIR=str(ROOT / "templates"),
    )  # fmt: skip
    return env


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


async def start_api(
    server: EmbeddedNats, database_url: str, tmp: Path, workers: int, stack: AsyncExitStack,
    jetpost: str | None = None, sample: str | None = None,
) -> Target:  # fmt: skip
    """`jetpost run api`; `jetpost`: another installation's (`--baseline`); `sample`: the
    first worker under the sampler, its report written to that file (bench.sampled)."""
    port = free_port()
    env = api_env(server, database_url, tmp, port, workers)
    command = [jetpost or str(Path(sys.executable).parent / "jetpost")]
    if sample and not jetpost:
        command = [_python(), "-m", "bench.sampled", sample]
    proc = await stack.enter_async_context(process(*command, "run", "api", env=env))
    await ready(port, proc)
    if sample and not jetpost:
        proc.send_signal(signal.SIGUSR1)  # bench.sampled: start-up is not measured
    pids = {"server": proc.pid, "nats": server.process.pid if server.process else 0}
    pids.update({f"server-{p}": p for p in _children(proc.pid)})
    name = f" x{workers}" if workers > 1 else ""
    return Target(f"{name} (baseline)" if jetpost else name, port, pids)


async def one_run(
    run: int, raws: list[Target], apis: list[Target], database_url: str, js: Any, key: str,
    ids: list[str], args: argparse.Namespace, rows: Rows,
) -> int:  # fmt: skip
    """Every phase once, back to back, so that each ratio compares figures taken under
    the same load of the machine; returns how many 202s were answered."""
    for raw in raws:
        rows.add(raw.name, await load(spec(raw.port, args, paths=["/"]), raw.pids))
    rows.add("raw psycopg", await raw_psycopg(database_url, ids, args))
    rows.add("raw publish", await raw_publish(js, args, run))
    auth = {"Authorization": f"Bearer {key}"}
    post = {**auth, "Content-Type": "application/json"}
    send = {"method": "POST", "paths": ["/v1/messages"], "body": SEND_BODY, "expect": 202}
    paths = [f"/v1/messages/{mid}" for mid in ids]
    accepted = 0
    for api in apis:
        if "GET" in args.phases:
            rows.add(f"GET{api.name}", await load(spec(api.port, args, paths=paths, headers=auth),
                                                  api.pids))  # fmt: skip
        if "POST" in args.phases:
            rows.add(f"POST{api.name}", await load(spec(api.port, args, headers=post, **send),
                                                   api.pids))  # fmt: skip
            accepted += args.requests + args.requests // 10
        if "POST+key" in args.phases:
            keyed = {**post, "Idempotency-Key": f"bench-{api.port}-{run}-{{i}}"}
            rows.add(f"POST+key{api.name}", await load(spec(api.port, args, headers=keyed,
                                                            **send), api.pids))  # fmt: skip
            accepted += args.requests + args.requests // 10
    return accepted


async def bench(args: argparse.Namespace) -> Rows:
    rows = Rows()
    async with embedded_stack("jetpost-bench-api-") as st:
        server, database_url, tmp, js = st.server, st.database_url, st.tmp, st.js
        await fill(js, args.messages * 4)
        await replay(database_url, st.nc, list(PROJECTIONS.values()))
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            _, key = await create_key(conn, ["read", "send"], "bench")
            await conn.commit()
        rng = random.Random(15)
        ids = [f"bench{rng.randrange(args.messages):08d}" for _ in range(args.requests)]
        async with AsyncExitStack() as exits:
            raws = [await start_raw(kind, exits) for kind in ("asyncio", "litestar")]
            apis: list[Target] = []
            for workers in args.workers:  # each beside the baseline's of as many workers
                if args.baseline:
                    apis.append(await start_api(server, database_url, tmp, workers, exits,
                                                args.baseline))  # fmt: skip
                apis.append(await start_api(server, database_url, tmp, workers, exits,
                                            sample=_sample_file(args.sample, workers)))  # fmt: skip
            before = (await js.stream_info(CMD_STREAM)).state.messages
            accepted = 0
            for run in range(args.runs):
                accepted += await one_run(run, raws, apis, database_url, js, key, ids, args,
                                          rows)  # fmt: skip
            stored = (await js.stream_info(CMD_STREAM)).state.messages - before
            if stored != accepted:
                raise RuntimeError(f"{accepted} commands answered 202, {stored} in MAIL_CMD")
    return rows


def table(rows: Rows, args: argparse.Namespace) -> str:
    load1, load5, _ = os.getloadavg()
    lines = [f"jetpost API benchmark: {args.requests} requests x {args.runs} runs, "
             f"{args.concurrency} concurrent, {args.messages} messages, cpus={os.cpu_count()}, "
             f"load average {load1:.2f} {load5:.2f} (at the end)",
             f"  {'':<22}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}   CPU (share of one core): "
             "server client nats   server CPU us/request"]  # fmt: skip
    for name in rows.results:
        r = rows.median(name)
        # CPU per request (median of the runs'): less swayed by other work than the rate
        cpu = statistics.median(x.server_cpu / x.rps * 1e6 for x in rows.results[name])
        per = f"{cpu:>24,.0f}" if cpu else ""
        lines.append(f"  {name:<22}{r.rps:>8,.0f}{r.p50:>8.1f}{r.p99:>8.1f}   {r.server_cpu:>24.0%}"
                     f" {r.client_cpu:>6.0%} {r.nats_cpu:>4.0%}{per}")  # fmt: skip
    refs = [r.rps for r in rows.results["raw litestar"]]
    for name in rows.results:
        if not name.startswith("raw"):
            r = rows.median(name)
            ratio = statistics.median(a.rps / b for a, b in zip(rows.results[name], refs,
                                                                strict=True))  # fmt: skip
            get = name.startswith("GET")
            goal = "p99 < 10 ms, >= 2,000/s" if get else "p99 < 20 ms, >= 2,000/s"
            met = r.rps >= 2000 and r.p99 < (10 if get else 20)
            lines.append(f"  {name:<22} / raw litestar {ratio:5.2f}   goal {goal}"
                         f" ({'met' if met else 'NOT met'})")  # fmt: skip
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000, help="messages seeded")
    parser.add_argument("--requests", type=int, default=3000, help="per measured phase")
    parser.add_argument("--runs", type=int, default=3, help="the median is printed")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=lambda s: [int(w) for w in s.split(",")], default=[1],
                        help="JETPOST_API_WORKERS values to measure, e.g. 1,2")  # fmt: skip
    parser.add_argument("--baseline", metavar="JETPOST",
                        help="also measure this `jetpost` (e.g. main's .venv/bin/jetpost) "
                        "in the same runs: before and after under the same load")  # fmt: skip
    parser.add_argument(
        "--sample",
        metavar="FILE",
        help="profile the API's first worker (bench.sampler); the report "
        "goes to FILE.x<workers> (all phases of all runs together)",
    )
    parser.add_argument(
        "--phases",
        type=lambda s: s.split(","),
        default=["GET", "POST", "POST+key"],
        help="which API phases to measure (default GET,POST,POST+key)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = asyncio.run(bench(args))
    print(table(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
