"""The benchmark's SMTP sink, run as its own process by `bench.e2e_send`.

Why not `jetpost capture`: it writes every mail to an .eml file (temp file + rename)
and the benchmark would then have to poll a directory to count them. Both cost CPU
that has nothing to do with the client being measured, and polling only sees the
last mail up to one poll interval late. This sink keeps mail in memory
(`CaptureSink(folder=None)`, the same aiosmtpd protocol as `jetpost capture`) and
answers on stdin/stdout, one line each way:

    -> ready <port>                     once listening (printed unasked, first)
    <- wait <count> <timeout_seconds>
    -> done <count> <monotonic> <bytes>  `monotonic`: time.monotonic() when the
                                         <count>-th mail was accepted
    -> timeout <count> <bytes>          fewer than <count> mails within the timeout
    <- stats
    -> stats <count> <bytes> <sessions>

`time.monotonic()` is CLOCK_MONOTONIC on Linux, the same clock in every process,
so the parent can subtract its own start time from the stamp of the last mail
without the parent's (busy) event loop adding latency to the measurement.
End of stdin stops the sink, so it never outlives the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from typing import Any

from services.capture import CaptureSink


class CountingSink(CaptureSink):
    """A capture sink that also stamps each accepted mail with time.monotonic()."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(None, host=host, port=port)
        self.stamps: list[float] = []
        self.bytes = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        count = len(self.received)
        reply = await super().handle_DATA(server, session, envelope)
        if len(self.received) > count:
            self.stamps.append(time.monotonic())
            self.bytes += len(envelope.original_content)
        return reply


def _reply(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _answer(sink: CountingSink, line: str) -> None:
    match line.split():
        case ["wait", count, timeout]:
            target = int(count)
            try:
                await sink.wait_for(target, float(timeout))
            except TimeoutError:
                _reply(f"timeout {len(sink.received)} {sink.bytes}")
                return
            _reply(f"done {len(sink.received)} {sink.stamps[target - 1]!r} {sink.bytes}")
        case ["stats"]:
            _reply(f"stats {len(sink.received)} {sink.bytes} {sink.connections}")
        case _:
            _reply(f"error unknown command {line.strip()!r}")


async def _serve(sink: CountingSink, commands: asyncio.StreamReader) -> None:
    """Answers each command in its own task, so that the end of stdin is seen (and
    the sink stops) even while a `wait` is pending. The benchmark asks one thing
    at a time, so answers cannot cross."""
    pending: set[asyncio.Task[None]] = set()
    try:
        while line := (await commands.readline()).decode():
            task = asyncio.create_task(_answer(sink, line))
            pending.add(task)
            task.add_done_callback(pending.discard)
    finally:
        for task in pending:
            task.cancel()


async def run(host: str, port: int) -> None:
    sink = CountingSink(host, port)
    bound = await sink.start()
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    _reply(f"ready {bound}")
    try:
        await _serve(sink, commands)
    finally:
        await sink.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sink", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.host, args.port))


if __name__ == "__main__":
    main()
