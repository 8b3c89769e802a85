"""API keys: `jp_` + 43 random URL-safe characters, shown once; only a SHA-256 of
the key is stored (api_keys.key_hash), so a leaked table leaks no usable key.

A key is found by its hash (an index lookup on a value the caller cannot steer
prefix by prefix), so comparing needs no constant-time code.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection

PREFIX = "jp_"
# `send`: POSTs that send, resend or suppress. `read`: GETs and template previews.
# `admin`: everything, and the only scope that may lift a suppression.
SCOPES = ("send", "read", "admin")


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime | None = None
    revoked_at: datetime | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(raw: str | Iterable[str]) -> tuple[str, ...]:
    """`send,read` -> ("read", "send"); ValueError naming an unknown scope."""
    parts = raw.split(",") if isinstance(raw, str) else list(raw)
    scopes = sorted({p.strip() for p in parts if p.strip()})
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes are one or more of {', '.join(SCOPES)}; got {raw!r}")
    return tuple(scopes)


async def create_key(
    conn: AsyncConnection, scopes: Iterable[str], name: str = ""
) -> tuple[ApiKey, str]:
    """Store a new key's hash; returns the key record and the secret (shown once)."""
    secret = new_secret()
    key = ApiKey(id="key_" + secrets.token_hex(8), name=name, scopes=parse_scopes(scopes))
    await conn.execute(
        "INSERT INTO api_keys (id, name, key_hash, scopes) VALUES (%s, %s, %s, %s)",
        (key.id, key.name, hash_key(secret), list(key.scopes)),
    )
    return key, secret


async def list_keys(conn: AsyncConnection) -> list[ApiKey]:
    cur = await conn.execute(
        "SELECT id, name, scopes, created_at, revoked_at FROM api_keys ORDER BY created_at, id"
    )
    return [ApiKey(r[0], r[1], tuple(r[2]), r[3], r[4]) for r in await cur.fetchall()]


async def revoke_key(conn: AsyncConnection, key_id: str) -> bool:
    """Revoke a live key; False when there is no such live key."""
    cur = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (key_id,)
    )
    return cur.rowcount == 1


async def find_key(conn: AsyncConnection, secret: str) -> ApiKey | None:
    """The live key with this secret, or None (unknown or revoked)."""
    cur = await conn.execute(
        "SELECT id, name, scopes FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
        (hash_key(secret),),
    )
    row = await cur.fetchone()
    return ApiKey(row[0], row[1], tuple(row[2])) if row else None
