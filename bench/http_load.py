"""A small HTTP/1.1 load generator for the API benchmark, run in its own process so its
CPU is neither taken from the server measured nor hidden in it.

`--concurrency` keep-alive connections, each sending its share of the requests one
after another (a closed loop, like `ab -k -c N`). Raw sockets and a hand-written
request line: the client must cost far less per request than any server it measures.
It reads one JSON spec on stdin and prints one JSON result on stdout:

    spec:   {"host", "port", "method", "paths": [...], "headers": {...}, "body": "...",
             "requests": N, "warmup": N, "concurrency": N, "expect": 200}
    result: {"requests", "seconds", "rps", "p50_ms", "p99_ms", "cpu_s", "errors": {...}}

`paths` are used in turn; a header value may hold `{i}`, replaced by the request's
number (a distinct Idempotency-Key per request). Only `Content-Length` bodies are read
(every jetpost JSON answer has one).

    echo '{"port": 8025, "paths": ["/healthz"]}' | python -m bench.http_load
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Spec:
    host: str = "127.0.0.1"
    port: int = 8025
    method: str = "GET"
    paths: list[str] = field(default_factory=lambda: ["/"])
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    requests: int = 2000
    warmup: int = 200
    concurrency: int = 16
    expect: int = 200

    def request(self, i: int) -> bytes:
        body = self.body.encode()
        lines = [f"{self.method} {self.paths[i % len(self.paths)]} HTTP/1.1",
                 f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]  # fmt: skip
        lines += [f"{k}: {v.replace('{i}', str(i))}" for k, v in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length) if length else b""


async def _connection(spec: Spec, numbers: range, latencies: list[float],
                      errors: Counter[str]) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection(spec.host, spec.port)
    try:
        for i in numbers:
            request = spec.request(i)
            started = time.perf_counter()
            status, body = await _exchange(reader, writer, request)
            latencies.append(time.perf_counter() - started)
            if status != spec.expect:
                errors[f"{status} {body[:200].decode(errors='replace')}"] += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _phase(spec: Spec, first: int, count: int) -> tuple[list[float], float, Counter[str]]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    shares = [range(first + c, first + count, spec.concurrency) for c in range(spec.concurrency)]
    started = time.perf_counter()
    await asyncio.gather(*(_connection(spec, share, latencies, errors) for share in shares))
    return latencies, time.perf_counter() - started, errors


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


async def run(spec: Spec) -> dict[str, Any]:
    if spec.warmup:
        await _phase(spec, 0, spec.warmup)
    cpu = time.process_time()
    latencies, seconds, errors = await _phase(spec, spec.warmup, spec.requests)
    cpu = time.process_time() - cpu
    latencies.sort()
    return {
        "requests": spec.requests, "seconds": seconds, "rps": spec.requests / seconds,
        "p50_ms": percentile(latencies, 0.50) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
        "cpu_s": cpu, "errors": dict(errors.most_common(5)),
    }  # fmt: skip


def main() -> None:
    spec = Spec(**json.loads(sys.stdin.read()))
    try:
        import uvloop  # the client's own overhead, as low as this machine allows
    except ImportError:  # pragma: no cover - uvloop is a dependency
        result = asyncio.run(run(spec))
    else:
        result = uvloop.run(run(spec))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
