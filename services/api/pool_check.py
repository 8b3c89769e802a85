"""The API pool's check of a connection before it is lent: a round trip to Postgres
only for a connection left unused for a while (it may have been cut meanwhile: a
Postgres restart, an idle timeout on the way). Checking every loan cost a round trip
per request, as much as the request's own query. A connection in steady use that
breaks all the same fails its one request with a 503, and the pool drops it."""

from __future__ import annotations

import time
import weakref
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool


class IdleCheck:
    def __init__(self, after: float = 2.0) -> None:
        self.after = after
        self._lent: weakref.WeakKeyDictionary[AsyncConnection[Any], float] = (
            weakref.WeakKeyDictionary()
        )

    async def __call__(self, conn: AsyncConnection[Any]) -> None:
        now = time.monotonic()
        last = self._lent.get(conn)
        if last is None or now - last >= self.after:
            await AsyncConnectionPool.check_connection(conn)  # raises: the pool drops it
        self._lent[conn] = now
