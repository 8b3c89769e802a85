"""Reading MAIL_EVT in stream order from a sequence, in batches, with backpressure.

An ephemeral pull consumer (no acks: the read model owns its position) is asked for
events only while the local buffer has room, so a slow database holds the reader
back instead of growing memory or dropping messages. Events arrive on our own inbox
subscription as raw bytes (shared.raw_inbox), and are read by projections.decode:
both cost far less per event than nats-py's messages and a full model. After a
reconnect, or if the server forgot the consumer, it is recreated from the last
sequence handed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence

from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from projections.base import DeadLetter, Stored
from projections.decode import read_event_at
from shared.raw_inbox import STATUS_LINE, header, subscribe_raw, unsubscribe_raw
from shared.subjects import EVT_PREFIX, EVT_STREAM
from shared.telemetry.tracing import TRACEPARENT, trace_id_of

log = logging.getLogger("jetpost.projections")

PULL_EXPIRES = 5.0  # seconds a pull request waits on the server for new events


_TRACEPARENT = TRACEPARENT.encode() + b":"
_tuple_new = tuple.__new__


def delivery_of(reply: bytes) -> tuple[bytes, int, int] | None:
    """(consumer, stream sequence, consumer sequence) of a delivery, from its reply
    subject `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.
    <pending>` (or the v2 form, with domain and account hash after `$JS.ACK`): what
    `msg.metadata` gives, without the datetime and the rest it builds per event. None
    for anything else."""
    tokens = reply.split(b".")
    at = 3 if len(tokens) == 9 else 5 if len(tokens) >= 11 else 0
    if not at or not tokens[at + 2].isdigit() or not tokens[at + 3].isdigit():
        return None
    return tokens[at], int(tokens[at + 2]), int(tokens[at + 3])


class EventReader:
    """`subjects`: only these (server-side filters, `mail.evt.>` by default); `keep`:
    of those, only the events whose subject it accepts are parsed and handed out (the
    others are passed over unread, see `seen`)."""

    def __init__(
        self, nc: Client, start_seq: int, max_batch: int = 2000,
        subjects: Sequence[str] = (f"{EVT_PREFIX}.>",),
        keep: Callable[[str], bool] | None = None,
    ) -> None:  # fmt: skip
        self.nc = nc
        self.js = nc.jetstream()
        self.next_seq = max(start_seq, 1)  # the first sequence not yet handed out
        self.max_batch = max_batch
        self.subjects = list(subjects)
        self.keep = keep
        self.seen = 0  # the last stream sequence delivered, handed out or passed over
        self._buffer: list[Stored | DeadLetter] = []
        # the events of the last batch that could not be parsed: the caller records
        # them (and moves its position past them), it does not stop on them
        self.dead: list[DeadLetter] = []
        self._ready = asyncio.Event()
        self._sub: Subscription | None = None
        self._inbox = ""
        self._consumer = ""
        self._consumer_id = b""  # as deliveries' reply subjects spell it
        self._outstanding = 0  # events asked for and not yet received
        self._asked_at = 0.0
        self._consumer_seq = 0  # the consumer's delivery count seen so far
        self._gap = False  # a delivery went missing: start over from what we have

    async def start(self) -> None:
        self._inbox = self.nc.new_inbox()
        self._sub = await subscribe_raw(self.nc, self._inbox, self._on_delivery)
        await self._create_consumer()

    async def stop(self) -> None:
        if self._sub is not None:
            await unsubscribe_raw(self.nc, self._sub)
            self._sub = None
        if self._consumer:
            # ephemeral: the server drops it anyway once inactive
            with contextlib.suppress(NotFoundError, TimeoutError, OSError):
                await self.js.delete_consumer(EVT_STREAM, self._consumer)

    async def _create_consumer(self) -> None:
        buffered = self._buffer[-1].seq + 1 if self._buffer else self.next_seq
        info = await self.js.add_consumer(
            EVT_STREAM,
            ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=buffered,
                ack_policy=AckPolicy.NONE,
                filter_subject=self.subjects[0] if len(self.subjects) == 1 else None,
                filter_subjects=self.subjects if len(self.subjects) > 1 else None,
                inactive_threshold=60.0,
                mem_storage=True,
            ),
        )
        self._consumer = info.name
        self._consumer_id = info.name.encode()
        self._outstanding = 0
        self._consumer_seq = 0
        self._gap = False

    def _on_delivery(
        self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        """One delivery on the inbox, as raw bytes (shared.raw_inbox), in line."""
        if not data and headers is not None and headers.startswith(STATUS_LINE):
            self._outstanding = 0  # the pull request ended (expired or nothing left)
            self._ready.set()
            return
        delivery = delivery_of(reply)
        if delivery is None:
            return  # not a delivery of a consumer
        consumer, seq, consumer_seq = delivery
        if consumer != self._consumer_id or self._gap:
            return  # from a consumer we replaced, or after a gap we are about to mend
        if consumer_seq != self._consumer_seq + 1:
            # deliveries are lost on a connection blip (no acks, core-NATS inbox): never
            # hand out events past a hole; recreate the consumer after what we have
            self._gap = True
            self._ready.set()
            return
        self._consumer_seq = consumer_seq
        self._outstanding -= 1
        self.seen = seq
        if self.keep is not None and not self.keep(subject.decode(errors="replace")):
            if not self._buffer:
                self.next_seq = seq + 1
            if self._outstanding <= 0:
                self._ready.set()  # the request is done: time to ask for more
            return
        try:
            event, at = read_event_at(data, subject.rpartition(b".")[2])
        except (ValidationError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {str(exc)[:1000]}"
            name = subject.decode(errors="replace")
            log.error("MAIL_EVT seq=%d (%s) cannot be read; passed over: %s",
                      seq, name, problem)  # fmt: skip
            self._buffer.append(DeadLetter(seq, name, data, problem))
        else:
            trace = header(headers, _TRACEPARENT) if headers else None
            trace_id = trace_id_of({TRACEPARENT: trace}) if trace else None
            # (Stored's own __new__ wraps this in a Python call: 0.2 µs an event, not 0.1)
            self._buffer.append(_tuple_new(Stored, (seq, data, event, trace_id, at)))
        self._ready.set()

    async def _pull(self) -> None:
        """Ask for more when the buffer has room and no request is under way; a request
        that went quiet past its expiry (a lost connection) is replaced."""
        stale = self._outstanding > 0 and time.monotonic() - self._asked_at > PULL_EXPIRES + 2
        if stale or self._gap:
            # a request gone quiet may have lost events too: start over after the last
            # event we have, on a fresh consumer
            with contextlib.suppress(NotFoundError):
                await self.js.delete_consumer(EVT_STREAM, self._consumer)
            await self._create_consumer()
        if self._outstanding > 0 or len(self._buffer) >= self.max_batch * 2:
            return
        want = self.max_batch * 2
        request = {"batch": want, "expires": int(PULL_EXPIRES * 1e9)}
        await self.nc.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{EVT_STREAM}.{self._consumer}",
            json.dumps(request).encode(),
            reply=self._inbox,
        )
        self._outstanding, self._asked_at = want, time.monotonic()

    async def caught_up(self) -> bool:
        """Nothing buffered, and the server has nothing left for this reader's filters
        that has not reached us (what a filtered reader knows of being done)."""
        if self._buffer or not self._consumer:
            return False
        info = await self.js.consumer_info(EVT_STREAM, self._consumer)
        return info.num_pending == 0 and (info.delivered.consumer_seq or 0) <= self._consumer_seq

    def done_through(self, seq: int) -> bool:
        """Every event up to `seq` has been handed out or passed over."""
        return self.seen >= seq and (not self._buffer or self._buffer[0].seq > seq)

    async def next_batch(self, timeout: float | None = None) -> list[Stored]:
        """What has arrived (at most max_batch), waiting up to `timeout` for anything.
        Unreadable events among them are in `dead`, not in the batch."""
        self.dead = []
        await self._pull()
        if not self._buffer:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return []
            await self._pull()
        taken, self._buffer = self._buffer[: self.max_batch], self._buffer[self.max_batch :]
        if taken:
            self.next_seq = taken[-1].seq + 1
        self.dead = [item for item in taken if isinstance(item, DeadLetter)]
        return [item for item in taken if isinstance(item, Stored)]
