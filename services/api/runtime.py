"""What the API's handlers share: built in `create_app`, its clients opened and
closed by the app's lifespan, handed to handlers as the `rt` dependency."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from services.api.bus import Bus
from services.api.coalesce import Coalescer
from services.api.keys import ApiKey
from services.api.metrics import Metrics
from services.api.ratelimit import MissCache, RateLimit
from services.api.templates_info import TemplateInfo
from services.renderer.catalog import TemplateCatalog
from shared.settings import Settings


@dataclass
class KeyCache:
    """Recently seen live keys by hash, so a request needs no query for its key and a
    Postgres blip does not stop sends at once. A key that changes in Postgres is
    dropped at once (services.api.key_changes); `ttl` bounds how long a revoked key
    could still work should that news not arrive (0: no cache)."""

    ttl: float
    entries: dict[str, tuple[ApiKey, float]] = field(default_factory=dict)
    max_entries: int = 10_000
    # bumped by every drop: a lookup that began before a drop must not cache its answer
    generation: int = 0

    def get(self, key_hash: str) -> ApiKey | None:
        found = self.entries.get(key_hash)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def put(self, key_hash: str, key: ApiKey, generation: int | None = None) -> None:
        """Remember `key`, unless something was dropped since `generation` was read
        (the key may have been revoked while it was being looked up)."""
        if self.ttl <= 0 or (generation is not None and generation != self.generation):
            return
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        self.entries[key_hash] = (key, time.monotonic() + self.ttl)

    def forget(self, key_id: str) -> None:
        self.generation += 1
        for digest in [d for d, (key, _) in self.entries.items() if key.id == key_id]:
            del self.entries[digest]

    def clear(self) -> None:
        self.generation += 1
        self.entries.clear()


@dataclass
class Runtime:
    settings: Settings
    catalog: TemplateCatalog
    templates: dict[str, TemplateInfo]
    metrics: Metrics
    asyncapi: dict[str, Any]
    keys: KeyCache
    # The catalog previews render with: signed links carry a throwaway key, so a
    # preview can never mint a working activation or reset link.
    preview_catalog: TemplateCatalog | None = None
    pool_: AsyncConnectionPool | None = None
    bus_: Bus | None = None
    # keys just looked up and not found, and failed lookups per client address
    misses: MissCache = field(default_factory=lambda: MissCache(5.0))
    auth_failures: RateLimit = field(default_factory=lambda: RateLimit(30.0))
    # `messages` rows by id, concurrent reads coalesced (services.api.messages)
    message_rows_: Coalescer[str, dict[str, Any]] | None = None
    message_bodies_: Coalescer[str, bytes] | None = None  # their JSON, for GET

    @functools.cached_property
    def mail_domain(self) -> str:
        return self.settings.mail_domain  # parsed from JETPOST_SENDER_FROM: once

    @property
    def pool(self) -> AsyncConnectionPool:
        assert self.pool_ is not None, "the API's lifespan has not opened the pool"
        return self.pool_

    @property
    def bus(self) -> Bus:
        assert self.bus_ is not None, "the API's lifespan has not connected to NATS"
        return self.bus_
