"""Phase (c) of `bench.e2e_send`: what the event log and the SMTP conversation alone
cost per mail, the floor under jetpost's own code.

A mail through jetpost costs at least what its guarantees need in JetStream (every
event durably appended before the message that caused it is acked) and the SMTP
conversation that hands it over. This phase does exactly that, in this process, with
nothing else: no FastStream, no pydantic, no validation, no rendering, no MIME
building (one mail's bytes, built once, are sent each time). It replays what phase
(b) does per mail (counted on `--n 2000` with the stages instrumented):

  the send command published (as in (b): 256 in flight, acked);
  intake:   a delivery; a direct get of the suppression bucket; `accepted`
            appended only if the message has no event yet (a caller-chosen id:
            compare-and-set on its subjects); ack;
  renderer: a delivery; `rendered` appended; ack;
  sender:   a delivery (a first one: no read of the log); `attempted` appended with
            compare-and-set on the delivered event's sequence; the mail sent over
            one of `--connections` aiosmtplib connections; `delivered` appended; ack.

The events appended are phase (b)'s own bytes (one real message's four events, read
back from MAIL_EVT) under fresh ids, with the same headers (`Nats-Msg-Id`, expected
stream, expected last subject sequence), into streams and consumers configured as
MAIL_CMD / MAIL_EVT and intake / renderer / sender (same windows in flight). The
transport is the cheapest this codebase has: shared/pull.py's pull window and
shared/inflight.py's requests on nats-py, the ones the pipeline uses.

The ratio b/a follows the CPU per mail (the raw client's over jetpost's), so with
this phase's CPU per mail F and the raw client's R, one process cannot pass R / F;
what jetpost spends above F is its own code.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiosmtplib
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, StreamConfig

from bench.jetpost_phase import command, publish
from services.sender.envelope import mail_from, rcpt_to
from services.sender.smtp_commands import data
from shared import inflight
from shared.eventlog import expect_last_headers
from shared.pull import PullWindow
from shared.subjects import (
    CMD_STREAM,
    EVT_STREAM,
    SUPPRESSION_BUCKET,
    event_filter,
    event_subject,
)

FLOOR_CMD, FLOOR_EVT = "FLOOR_CMD", "FLOOR_EVT"
STAGES = ("accepted", "rendered", "attempted", "delivered")
Stage = Callable[[Msg], Coroutine[Any, Any, None]]
FLOOR_SUBJECT = "floor.cmd.send"
SENDER = "bench@example.com"
WINDOWS = {"intake": 64, "renderer": 64, "sender": 64}  # fetch_batch; 8 x the SMTP pool


@dataclass(frozen=True)
class Sample:
    """One real message of phase (b): its id and its events' bytes, by type."""

    message_id: str
    events: dict[str, bytes]

    def event(self, kind: str, message_id: str) -> bytes:
        return self.events[kind].replace(self.message_id.encode(), message_id.encode())


async def sample_of(js: JetStreamContext) -> Sample:
    """The four events of the last message phase (b) delivered."""
    last = await inflight.direct_last(js, EVT_STREAM, event_filter("delivered"))
    message_id = last.headers["Nats-Subject"].split(".")[2]
    events = {}
    for kind in STAGES:
        stored = await inflight.direct_last(js, EVT_STREAM, event_subject(message_id, kind))
        events[kind] = stored.data
    return Sample(message_id, events)


async def _declare(js: JetStreamContext) -> None:
    """FLOOR_CMD and FLOOR_EVT as MAIL_CMD and MAIL_EVT; three consumers as the
    pipeline's (ack wait, max ack pending), filtered to the floor's subjects."""
    for name, like, subjects in ((FLOOR_CMD, CMD_STREAM, ["floor.cmd.>"]),
                                 (FLOOR_EVT, EVT_STREAM, ["floor.evt.>"])):  # fmt: skip
        stream_config = (await js.stream_info(like)).config.as_dict()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(name)
        stream_config.update(name=name, subjects=subjects)
        await js.add_stream(StreamConfig.from_response(stream_config))
    for durable, stream, like_stream, subject in (
        ("intake", FLOOR_CMD, CMD_STREAM, FLOOR_SUBJECT),
        ("renderer", FLOOR_EVT, EVT_STREAM, "floor.evt.*.accepted"),
        ("sender", FLOOR_EVT, EVT_STREAM, "floor.evt.*.rendered"),
    ):
        config = (await js.consumer_info(like_stream, durable)).config.as_dict()
        config.pop("filter_subjects", None)
        config["filter_subject"] = subject
        await js.add_consumer(stream, ConsumerConfig.from_response(config))


@dataclass
class Smtp:
    """The SMTP conversation alone: one mail's bytes, built once, to a recipient of
    each message's own, over `connections` aiosmtplib connections (the pipeline's
    pool size), each in use by one send at a time. The commands go as the sender's
    pool sends them (services/sender/envelope.py, smtp_commands.py)."""

    idle: asyncio.Queue[aiosmtplib.SMTP]
    clients: list[aiosmtplib.SMTP]
    mail: bytes

    @classmethod
    async def connect(cls, port: int, connections: int, mail: bytes) -> Smtp:
        clients = [aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30)
                   for _ in range(connections)]  # fmt: skip
        smtp = cls(asyncio.Queue(), clients, mail)
        try:
            await asyncio.gather(*(c.connect() for c in clients))
        except BaseException:
            smtp.close()
            raise
        for client in clients:
            smtp.idle.put_nowait(client)
        return smtp

    async def send(self, recipient: str) -> None:
        client = await self.idle.get()
        try:
            await mail_from(client, SENDER, [], "ascii")
            await rcpt_to(client, recipient, "ascii")
            await data(client, self.mail)
        finally:
            self.idle.put_nowait(client)

    def close(self) -> None:
        for client in self.clients:
            client.close()


class Floor:
    """The three stages' handlers: only the log's operations, and the SMTP conversation
    between `attempted` and `delivered`."""

    def __init__(self, js: JetStreamContext, sample: Sample, expected: int, smtp: Smtp) -> None:
        requests = inflight.requests_of(js)
        if requests is None:
            raise RuntimeError("shared.inflight is not enabled on this connection")
        self.js, self.sample, self.requests, self.smtp = js, sample, requests, smtp
        self.timeout = inflight.timeout_of(js)
        self.expected, self.done = expected, 0
        self.finished = asyncio.Event()
        self.error: BaseException | None = None

    def guarded(self, stage: Stage) -> Stage:
        """A stage that fails ends the phase: a floor that retried would not be one."""

        async def run(msg: Msg) -> None:
            try:
                await stage(msg)
            except Exception as exc:
                self.error = exc
                self.finished.set()
                raise

        return run

    async def wait(self, timeout: float) -> None:
        await asyncio.wait_for(self.finished.wait(), timeout)
        if self.error is not None:
            raise RuntimeError(f"the log floor failed: {self.error!r}") from self.error

    async def _append(self, kind: str, message_id: str, headers: dict[str, str]) -> int:
        headers["Nats-Msg-Id"] = f"{message_id}:{kind}:1"
        subject = f"floor.evt.{message_id}.{kind}"
        payload = self.sample.event(kind, message_id)
        return (await inflight.acked(self.requests, subject, payload, FLOOR_EVT, headers,
                                     self.timeout)).seq  # fmt: skip

    async def _absent(self, stream: str, subject: str) -> None:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await inflight.direct_last(self.js, stream, subject)

    async def intake(self, msg: Msg) -> None:
        message_id = msg.data[-34:-2].decode()  # bench.jetpost_phase's command: the id last
        await self._absent(f"KV_{SUPPRESSION_BUCKET}",
                           f"$KV.{SUPPRESSION_BUCKET}.{message_id}")  # fmt: skip
        guard = expect_last_headers(f"floor.evt.{message_id}.>", 0)  # no event yet
        await self._append("accepted", message_id, guard)
        await msg.ack()

    async def renderer(self, msg: Msg) -> None:
        await self._append("rendered", msg.subject.split(".")[2], {})
        await msg.ack()

    async def sender(self, msg: Msg) -> None:
        message_id = msg.subject.split(".")[2]
        delivered = msg.metadata.sequence.stream  # the `rendered` event: still the last
        guard = expect_last_headers(f"floor.evt.{message_id}.>", delivered)
        await self._append("attempted", message_id, guard)
        await self.smtp.send(f"{message_id}@example.com")
        await self._append("delivered", message_id, {})
        await msg.ack()
        self.done += 1
        if self.done >= self.expected:
            self.finished.set()


async def floor_phase(
    nc: Client, n: int, warmup: int, timeout: float, smtp: Smtp
) -> tuple[float, float]:
    """(seconds, CPU seconds of this process) for `n` mails through the log alone and
    `smtp`'s conversation, on a connection of its own to phase (b)'s nats-server."""
    js = nc.jetstream()
    inflight.enable(js)
    sample = await sample_of(js)
    await _declare(js)
    floor = Floor(js, sample, warmup, smtp)
    windows = [PullWindow(nc, stream, durable, WINDOWS[durable])
               for durable, stream in (("intake", FLOOR_CMD), ("renderer", FLOOR_EVT),
                                       ("sender", FLOOR_EVT))]  # fmt: skip
    handlers = [floor.guarded(h) for h in (floor.intake, floor.renderer, floor.sender)]
    loops = [
        asyncio.create_task(w.run(h, lambda: True)) for w, h in zip(windows, handlers, strict=True)
    ]
    try:
        await publish(js, [command(i) for i in range(warmup)], FLOOR_SUBJECT, FLOOR_CMD)
        await floor.wait(timeout)
        floor.done, floor.expected = 0, n
        floor.finished.clear()
        bodies = [command(i) for i in range(warmup, warmup + n)]
        cpu, start = time.process_time(), time.monotonic()
        await publish(js, bodies, FLOOR_SUBJECT, FLOOR_CMD)
        await floor.wait(timeout)
        return time.monotonic() - start, time.process_time() - cpu
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        for window in windows:
            await asyncio.gather(*window.tasks, return_exceptions=True)
        for name in (FLOOR_CMD, FLOOR_EVT):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)
