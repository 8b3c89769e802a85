"""Per-domain limits, held across every sender copy by counters in a NATS KV bucket.

`mail_throttle` holds three kinds of keys (the domain is its A-label form):
- `c.<domain>.<i>`: connection slot i of the domain's `concurrency`; a sender takes
  a free one with a compare-and-set (create, or update at the revision it read) and
  frees it after the send. A slot left by a crashed sender is free again after
  SLOT_LEASE seconds.
- `r.<domain>.<window>`: mails sent in one rate window (`count` per `period`),
  incremented with compare-and-set; old windows age out with the bucket's max_age.
- `s.<domain>`: a "slow down" answer (421/451) halves the domain's rate until
  `until`; one arriving SLOW_DOWN_SETTLE seconds later halves it again (down to
  1/16); it recovers by itself.

Over a limit, `acquire` answers a delay instead of a lease: the sender naks the
message with it and goes on with other mail, so a throttled domain never holds the
consumer. Domains without a limit (and not slowed) cost one cached read per second.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from services.sender.throttle_rules import Limit, limit_for, slowed

log = logging.getLogger("jetpost.sender.throttle")

THROTTLE_BUCKET = "mail_throttle"
SLOT_LEASE = 120.0  # a slot held longer than this is taken to belong to a dead sender
SLOWED_RATE = Limit(count=10, period=1.0)  # a domain without a rate that asked to slow down
MIN_FACTOR = 1 / 16
SLOW_DOWN_SETTLE = 5.0  # seconds after a lowering before another "slow down" lowers again
FACTOR_CACHE = 1.0
CAS_TRIES = 8


@dataclass
class Lease:
    slots: list[tuple[str, int]] = field(default_factory=list)  # (key, revision)


class Throttle:
    def __init__(
        self,
        kv: KeyValue,
        limits: dict[str, Limit],
        *,
        slow_for: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._kv = kv
        self._limits = limits
        self._slow_for = slow_for
        self._clock = clock
        self._factors: dict[str, tuple[float, float]] = {}  # domain -> (read at, factor)
        self._denied: dict[str, tuple[int, int]] = {}  # domain -> (window, denials in it)
        self._full: dict[str, int] = {}  # domain -> the rate window seen full (no KV asked)

    async def acquire(self, domains: Sequence[str]) -> Lease | float:
        """A lease on every domain's limits, or the delay to wait before trying again."""
        lease = Lease()
        for domain in sorted(set(domains)):
            denied = await self._acquire_one(domain, lease)
            if denied is not None:
                await self.release(lease)
                return denied
        return lease

    async def release(self, lease: Lease) -> None:
        slots, lease.slots = lease.slots, []
        for key, revision in slots:
            # taken over after its lease ran out: no longer ours to free
            with contextlib.suppress(KeyWrongLastSequenceError):
                await self._kv.update(key, b"", last=revision)

    async def slow_down(self, domain: str) -> float | None:
        """Record a "slow down" answer: the domain's new rate factor, or None when it
        was lowered moments ago (the mails in flight all say it at once) or is at its
        floor already."""
        key = f"s.{domain}"
        now = self._clock()
        try:
            entry = await self._kv.get(key)
            until, current, since = (float(v) for v in (entry.value or b"").split())
            if until <= now:
                current, since = 1.0, 0.0
        except (KeyNotFoundError, ValueError):
            current, since = 1.0, 0.0
        if now - since < SLOW_DOWN_SETTLE or current <= MIN_FACTOR:
            return None
        factor = max(current / 2, MIN_FACTOR)
        await self._kv.put(key, f"{now + self._slow_for} {factor} {now}".encode())
        self._factors[domain] = (time.monotonic(), factor)
        log.warning("%s asked to slow down: its rate is at %.0f%% for %.0fs",
                    domain, factor * 100, self._slow_for)  # fmt: skip
        return factor

    async def factor(self, domain: str) -> float:
        cached = self._factors.get(domain)
        if cached is not None and time.monotonic() - cached[0] < FACTOR_CACHE:
            return cached[1]
        factor = 1.0
        try:
            entry = await self._kv.get(f"s.{domain}")
            until, value, _ = (entry.value or b"0 1 0").split()
            if float(until) > self._clock():
                factor = float(value)
        except (KeyNotFoundError, ValueError):
            pass
        self._factors[domain] = (time.monotonic(), factor)
        return factor

    async def _acquire_one(self, domain: str, lease: Lease) -> float | None:
        limit = limit_for(self._limits, domain)
        factor = await self.factor(domain)
        if factor < 1:
            limit = slowed(limit if limit and limit.count else SLOWED_RATE, factor)
        if limit is None:
            return None
        if limit.count is not None and (full := self._seen_full(domain, limit)) is not None:
            return full  # over the rate: no connection slot taken (and given back) for it
        if limit.concurrency is not None:
            slot = await self._take_slot(domain, limit.concurrency)
            if slot is None:
                return random.uniform(0.05, 0.5)
            lease.slots.append(slot)
        if limit.count is not None:
            return await self._count(domain, limit.count, limit.period)
        return None

    def _later(self, domain: str, window: int, count: int, period: float, now: float) -> float:
        """When a message over the rate should come back: the k-th one denied in this
        window is given a place k/count windows ahead (plus jitter), so a backlog is
        spread over the windows that can take it instead of all coming back (and being
        denied again) at every window."""
        seen_window, denied = self._denied.get(domain, (window, 0))
        denied = denied + 1 if seen_window == window else 1
        self._denied[domain] = (window, denied)
        ahead = 1 + (denied - 1) // count
        return (window + ahead) * period - now + random.uniform(0, period)

    async def _take_slot(self, domain: str, concurrency: int) -> tuple[str, int] | None:
        now = self._clock()
        value = f"{now + SLOT_LEASE}".encode()
        start = random.randrange(concurrency)
        for i in range(concurrency):
            key = f"c.{domain}.{(start + i) % concurrency}"
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                try:
                    return key, await self._kv.create(key, value)
                except KeyWrongLastSequenceError:
                    continue
            held = entry.value or b""
            if held and float(held) > now:
                continue
            try:
                return key, await self._kv.update(key, value, last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
        return None

    def _seen_full(self, domain: str, limit: Limit) -> float | None:
        """The delay for a domain whose rate window this copy saw full, else None."""
        assert limit.count is not None
        now = self._clock()
        window = int(now // limit.period)
        if self._full.get(domain) == window:  # full for this window: deny without a round trip
            return self._later(domain, window, limit.count, limit.period, now)
        return None

    async def _count(self, domain: str, count: int, period: float) -> float | None:
        for _ in range(CAS_TRIES):
            now = self._clock()
            window = int(now // period)
            key = f"r.{domain}.{window}"
            try:
                entry = await self._kv.get(key)
                used, revision = int(entry.value or b"0"), entry.revision
            except KeyNotFoundError:
                used, revision = 0, None
            if used >= count:
                self._full[domain] = window
                return self._later(domain, window, count, period, now)
            try:
                if revision is None:
                    await self._kv.create(key, b"1")
                else:
                    await self._kv.update(key, str(used + 1).encode(), last=revision)
                return None
            except KeyWrongLastSequenceError:
                continue  # another sender counted first: read again
        return random.uniform(0.05, 0.2)
