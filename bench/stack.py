"""What the benchmarks stand on: an embedded nats-server with jetpost's streams and a
migrated embedded PostgreSQL, in a temp dir removed at the end."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from shared.embedded import EmbeddedNats, embedded_postgres
from shared.migrate import migrate
from shared.nats_setup import apply_definitions, load_definitions
from shared.paths import MIGRATIONS_DIR
from shared.settings import load_settings


@dataclass
class Stack:
    tmp: Path
    server: EmbeddedNats
    database_url: str
    nc: Client
    js: JetStreamContext


@asynccontextmanager
async def embedded_stack(prefix: str) -> AsyncIterator[Stack]:
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    server = EmbeddedNats(store_dir=tmp / "nats")
    server.start()
    try:
        with embedded_postgres(tmp / "pg") as database_url:
            await migrate(database_url, MIGRATIONS_DIR)
            nc = await nats.connect(server.url)
            try:
                js = nc.jetstream()
                await apply_definitions(js, load_definitions(load_settings(nats_url=server.url)))
                yield Stack(tmp, server, database_url, nc, js)
            finally:
                await nc.close()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
