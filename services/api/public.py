"""What the public, keyless endpoints share (tracking, unsubscribe): the key ring that
verifies their tokens and the NATS connection they append to. Served by the API
(`create_app`) and alone by `create_public_app` (`jetpost run public`).

Appending a tracking hit must not hold up the person who clicked: every append
waits at most `HIT_TIMEOUT`, and a failure is logged, not shown to them. A token
replayed over and over appends one event per JETPOST_TRACK_WINDOW (later hits are
counted in `hits.repeats`), and hits are rate-limited per client address and per
token (429 with Retry-After).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from litestar import Request

from services.api.bus import Bus
from services.api.problems import Problem, Unavailable
from services.api.ratelimit import HitWindows, RateLimit, retry_after_header
from shared.consumers import TRANSIENT_ERRORS
from shared.eventlog import append
from shared.events import Event
from shared.settings import Settings
from shared.tokens import KeyRing

log = logging.getLogger("jetpost.api")

_FAILURES: tuple[type[BaseException], ...] = (Unavailable, *TRANSIENT_ERRORS)  # incl. timeouts
HIT_TIMEOUT = 1.0  # seconds an open or a click waits for its event to be stored
# What a browser or a mail client must not do with these pages: cache them, frame
# them, or send their URL (which holds the token) on to the next site.
PRIVATE_HEADERS = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@dataclass
class Public:
    settings: Settings
    keys: KeyRing
    bus_: Bus | None = None
    hits: HitWindows = field(init=False)
    per_address: RateLimit = field(init=False)
    per_token: RateLimit = field(init=False)

    def __post_init__(self) -> None:
        self.hits = HitWindows(self.settings.track_window)
        self.per_address = RateLimit(self.settings.track_rate)
        self.per_token = RateLimit(self.settings.track_token_rate)

    def admit(self, request: Request[Any, Any, Any], token: str) -> None:
        """429 when this client address or this token has hit too often."""
        now = time.monotonic()
        address = request.client.host if request.client else ""
        wait = self.per_address.retry_after(address, now) or self.per_token.retry_after(
            hashlib.blake2b(token.encode(), digest_size=16).hexdigest(), now
        )
        if wait is not None:
            raise Problem(429, "too-many-requests", "too many requests; try again later",
                          headers={**PRIVATE_HEADERS, **retry_after_header(wait)})  # fmt: skip

    def hit_number(self, token: str) -> int | None:
        """The append's dedup counter for the first hit of `token` in this window;
        None for a repeat (counted, not recorded)."""
        return self.hits.first(token, time.time())

    @property
    def bus(self) -> Bus:
        if self.bus_ is None or not self.bus_.connected:
            raise Unavailable("NATS unavailable: not connected")
        return self.bus_


async def record_hit(pub: Public, event: Event, n: int) -> bool:
    """Append a tracking event, waiting at most HIT_TIMEOUT; False (logged) if not."""
    try:
        async with asyncio.timeout(min(HIT_TIMEOUT, pub.settings.api_timeout)):
            await append(pub.bus.js, event, n)
    except _FAILURES as exc:
        log.warning("%s of message %s not recorded: %r", event.type, event.message_id, exc)
        return False
    return True
