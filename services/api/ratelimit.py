"""In-process rate limits and short-lived memory for the API's public edges. Pure:
the caller passes the clock, so the tests need no sleeping.

- `RateLimit`: a token bucket per key (a client address, a token): `rate` per minute
  with a burst of the same size; a refused call learns how long to wait.
- `HitWindows`: tracking hits folded per window: the first hit of a token in a window
  is recorded as an event, later ones are only counted (`repeats`).
- `MissCache`: keys that were just looked up and not found, so a flood of bad API
  keys costs one query each per `ttl`, not one per request.

Memory is bounded: each keeps at most `max_keys` entries and forgets the oldest.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any


def _bounded(entries: OrderedDict[str, Any], max_keys: int) -> None:
    while len(entries) > max_keys:
        entries.popitem(last=False)


@dataclass
class RateLimit:
    rate: float  # per minute; 0: no limit
    max_keys: int = 100_000
    buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self.buckets.get(key, (self.rate, now))
        return min(self.rate, tokens + (now - at) * self.rate / 60.0)

    def waiting(self, key: str, now: float) -> float | None:
        """Like `retry_after`, without counting a call."""
        if self.rate <= 0 or (tokens := self._tokens(key, now)) >= 1.0:
            return None
        return (1.0 - tokens) / (self.rate / 60.0)

    def retry_after(self, key: str, now: float) -> float | None:
        """None when `key` may go on (and a call is counted), else seconds to wait."""
        if self.rate <= 0:
            return None
        per_second = self.rate / 60.0
        tokens = self._tokens(key, now)
        self.buckets.pop(key, None)  # re-inserted last: the most recently used
        if tokens < 1.0:
            self.buckets[key] = (tokens, now)
            return (1.0 - tokens) / per_second
        self.buckets[key] = (tokens - 1.0, now)
        _bounded(self.buckets, self.max_keys)
        return None


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


@dataclass
class HitWindows:
    window: float  # seconds
    max_keys: int = 100_000
    seen: OrderedDict[str, int] = field(default_factory=OrderedDict)
    repeats: int = 0  # hits folded into an earlier one, since start

    def first(self, token: str, now: float) -> int | None:
        """The append's dedup counter when this is the token's first hit of the
        window, else None (counted in `repeats`). The counter is derived from the
        token and the window, so another API process recording the same hit in the
        same window appends nothing new either (JetStream's duplicate window)."""
        index = int(now // self.window)
        key = hashlib.blake2b(f"{token}|{index}".encode(), digest_size=8).hexdigest()
        if key in self.seen:
            self.repeats += 1
            return None
        self.seen[key] = index
        _bounded(self.seen, self.max_keys)
        return int(key, 16) >> 1 or 1


@dataclass
class MissCache:
    ttl: float
    max_keys: int = 100_000
    until: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def missed(self, key: str, now: float) -> bool:
        found = self.until.get(key)
        if found is None:
            return False
        if found < now:
            del self.until[key]
            return False
        return True

    def put(self, key: str, now: float) -> None:
        if self.ttl > 0:
            self.until[key] = now + self.ttl
            _bounded(self.until, self.max_keys)
