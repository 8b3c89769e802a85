"""One endpoint's delivery loop on its own durable consumer: fetch events, POST them
(up to JETPOST_WEBHOOK_CONCURRENCY at once), record each attempt, and only then ack
(2xx or given up) or nak with the schedule's delay. A slow or dead endpoint holds
only its own consumer: nothing else waits on it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from services.webhooks.catalog import Mail, body
from services.webhooks.endpoints import Endpoint, Replay
from services.webhooks.post import Attempt, Poster
from services.webhooks.recorder import Recorder, Row
from services.webhooks.schedule import disable_due, next_delay
from services.webhooks.secrets import SealError, SecretBox, Signer
from shared.eventlog import last_event
from shared.events import Event, parse_event, utcnow
from shared.subjects import EVT_STREAM

log = logging.getLogger("jetpost.webhooks")
STOP_GRACE = 2.0  # seconds in-flight attempts get at shutdown; the rest come back later


class MailCache:
    """Which mail a message id is (its `accepted` event), remembered for a while."""

    def __init__(self, js: JetStreamContext, size: int = 20_000) -> None:
        self.js, self.size = js, size
        self._cache: OrderedDict[str, Mail] = OrderedDict()

    async def get(self, message_id: str) -> Mail:
        mail = self._cache.get(message_id)
        if mail is None:
            mail = Mail.of(await last_event(self.js, message_id, "accepted"))
            self._cache[message_id] = mail
            if len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return mail


@dataclass
class Deps:
    """What every worker shares, built once by the service."""

    js: JetStreamContext
    poster: Poster
    recorder: Recorder
    box: SecretBox
    mails: MailCache
    delays: tuple[float, ...]
    disable_after: float
    concurrency: int
    # (endpoint, failing since) -> append `webhook_endpoint_disabled`
    disable: Callable[[Endpoint, datetime], Awaitable[None]]
    signers: dict[tuple[str, ...], Signer] = field(default_factory=dict)

    def signer(self, endpoint: Endpoint) -> Signer:
        sealed = endpoint.signing_secrets(utcnow())
        signer = self.signers.get(sealed)
        if signer is None:
            signer = Signer([self.box.open(s) for s in sealed])
            if len(self.signers) > 1000:
                self.signers.clear()
            self.signers[sealed] = signer
        return signer


class Worker:
    def __init__(self, deps: Deps, endpoint: Endpoint, durable: str,
                 replay: Replay | None = None) -> None:  # fmt: skip
        self.deps, self.endpoint, self.durable, self.replay = deps, endpoint, durable, replay
        self._stopping = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self.task: asyncio.Task[bool] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.run())
        self.task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[bool]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s stopped", self.durable, exc_info=task.exception())

    def done(self) -> bool:
        return self.task is not None and self.task.done()

    async def run(self) -> bool:
        """Deliver until stopped; True when a replay has sent everything it had to."""
        js, limit = self.deps.js, self.deps.concurrency
        sub = await js.pull_subscribe_bind(durable=self.durable, stream=EVT_STREAM)
        backlog: deque[Msg] = deque()  # fetched ahead, so a freed slot never waits on NATS
        try:
            while not self._stopping.is_set():
                while backlog and len(self._inflight) < limit:
                    task = asyncio.create_task(self.handle(backlog.popleft()))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
                if len(backlog) >= limit:  # enough ahead: wait for a slot, or for the stop
                    stopping = asyncio.ensure_future(self._stopping.wait())
                    await asyncio.wait({*self._inflight, stopping},
                                       return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                    stopping.cancel()
                    continue
                try:
                    msgs = await sub.fetch(2 * limit - len(backlog),
                                           timeout=0.05 if backlog else 1.0)  # fmt: skip
                except TimeoutError:
                    idle = not self._inflight and not backlog
                    if self.replay is not None and idle and await self._replayed():
                        return True
                    continue
                except (nats.errors.Error, NotFoundError) as exc:
                    log.warning("%s: fetch failed: %r", self.durable, exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), 1.0)
                    continue
                backlog.extend(msgs)
            return False
        finally:
            for msg in backlog:  # not started: back to the stream for whoever runs next
                with contextlib.suppress(nats.errors.Error):
                    await msg.nak()
            await self._settle()
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await sub.unsubscribe()

    async def _settle(self) -> None:
        if self._inflight:
            _, pending = await asyncio.wait(self._inflight, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()  # unacked: redelivered after ack_wait, the same webhook-id
            await asyncio.gather(*pending, return_exceptions=True)

    async def _replayed(self) -> bool:
        assert self.replay is not None
        info = await self.deps.js.consumer_info(EVT_STREAM, self.durable)
        delivered = info.delivered.stream_seq if info.delivered else 0
        reached = info.num_pending == 0 or (delivered or 0) >= self.replay.until_seq
        return reached and not info.num_ack_pending

    async def stop(self) -> None:
        self._stopping.set()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def handle(self, msg: Msg) -> None:
        meta = msg.metadata
        if self.replay is not None and meta.sequence.stream > self.replay.until_seq:
            await msg.ack()  # past the replay's end: the live consumer has it
            return
        try:
            event = parse_event(msg.data)
        except (ValidationError, ValueError) as exc:
            log.error("%s: unreadable event %s skipped: %s", self.durable, msg.subject, exc)
            await msg.ack()
            return
        try:
            await self.deliver(msg, event)
        except Exception as exc:  # not recorded: it comes back, nothing is acked unrecorded
            log.warning("%s: %s not recorded, will retry: %r", self.durable, event.event_id, exc)
            await msg.nak(delay=5.0)

    async def deliver(self, msg: Msg, event: Event) -> None:
        endpoint, attempt_no = self.endpoint, msg.metadata.num_delivered
        mail = await self.deps.mails.get(event.message_id)
        content = body(event, mail)
        now = utcnow()
        try:
            headers = self.deps.signer(endpoint).headers(event.event_id, now, content)
        except SealError as exc:
            attempt = Attempt(False, None, 0.0, error=str(exc))
        else:
            attempt = await self.deps.poster.post(endpoint.url, content, headers)
        delay = None if attempt.ok else next_delay(attempt_no, self.deps.delays)
        outcome = "delivered" if attempt.ok else "retrying" if delay is not None else "failed"
        row = Row(
            endpoint_id=endpoint.id, webhook_id=event.event_id, type=f"message.{event.type}",
            message_id=event.message_id, seq=msg.metadata.sequence.stream, attempt=attempt_no,
            outcome=outcome, http_status=attempt.status, error=attempt.error,
            latency_ms=attempt.latency_ms, response=attempt.response,
            replay_id=self.replay.replay_id if self.replay else None, attempted_at=now,
            next_attempt_at=now + timedelta(seconds=delay) if delay is not None else None,
        )  # fmt: skip
        failing_since = await self.deps.recorder.record(row)
        if delay is None:
            await msg.ack()
        else:
            await msg.nak(delay=delay)
        if failing_since is not None and disable_due(failing_since, now, self.deps.disable_after):
            await self.deps.disable(endpoint, failing_since)
