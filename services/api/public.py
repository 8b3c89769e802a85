"""What the public, keyless endpoints share (tracking, unsubscribe): the key ring that
verifies their tokens and the NATS connection they append to. Served by the API
(`create_app`) and alone by `create_public_app` (`jetpost run public`).

Appending a tracking hit must not hold up the person who clicked: every append
waits at most `HIT_TIMEOUT`, and a failure is logged, not shown to them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass

from services.api.bus import Bus
from services.api.problems import Unavailable
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

    @property
    def bus(self) -> Bus:
        if self.bus_ is None or not self.bus_.connected:
            raise Unavailable("NATS unavailable: not connected")
        return self.bus_


def hit_number(token: str) -> int:
    """The append's dedup counter for one hit: every hit is its own event (a retried
    append of the same hit reuses it), from the token and the time in ns."""
    digest = hashlib.blake2b(f"{token}|{time.time_ns()}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1 or 1


async def record_hit(pub: Public, event: Event, n: int) -> bool:
    """Append a tracking event, waiting at most HIT_TIMEOUT; False (logged) if not."""
    try:
        async with asyncio.timeout(min(HIT_TIMEOUT, pub.settings.api_timeout)):
            await append(pub.bus.js, event, n)
    except _FAILURES as exc:
        log.warning("%s of message %s not recorded: %r", event.type, event.message_id, exc)
        return False
    return True
