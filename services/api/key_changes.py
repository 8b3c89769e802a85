"""Keeps the API's key cache true: migration 0012 has Postgres announce every change
to a key (revoked, restored, deleted; by the CLI, the console or plain SQL) on the
`jetpost_api_keys` channel, and this listener drops the key from the cache at once.

So the cache can spare a query per request without a revoked key working on until its
entry expires. While the listener is not connected (start-up, Postgres away) a change
could go unseen: the cache is emptied whenever it (re)connects, and entries still
expire after JETPOST_API_KEY_CACHE_TTL, as they would without it.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg

from services.api.runtime import KeyCache

CHANNEL = "jetpost_api_keys"

log = logging.getLogger("jetpost.api")


class KeyChanges:
    def __init__(self, database_url: str, cache: KeyCache, retry: float = 1.0) -> None:
        self.database_url, self.cache, self.retry = database_url, cache, retry
        self.listening = asyncio.Event()  # for the tests: notifications are heard now

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.database_url, autocommit=True
        ) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self.cache.clear()  # a change made before LISTEN was never announced to us
            self.listening.set()
            async for note in conn.notifies():
                self.cache.forget(note.payload)

    async def run(self) -> None:
        """Until cancelled; reconnects after `retry` seconds when Postgres goes away."""
        while True:
            try:
                await self._listen()
            except psycopg.OperationalError as exc:
                log.debug("key change listener: %r; again in %ss", exc, self.retry)
            finally:
                # cached keys stay for their ttl: sends go on through a Postgres blip
                self.listening.clear()
            await asyncio.sleep(self.retry)
