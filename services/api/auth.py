"""Bearer API keys with scopes, checked by a route guard before the body is read.

401 without a key or with an unknown or revoked one; 403 when the key lacks the
route's scope. `admin` holds every scope. A key just found unknown is remembered for
JETPOST_API_KEY_MISS_TTL (no query per retry), and a client address whose failed
keys exceed JETPOST_API_AUTH_FAIL_RATE per minute gets 429 before any lookup.
"""

from __future__ import annotations

import time
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.types import Guard

from services.api.keys import ApiKey, find_key, hash_key
from services.api.problems import Problem
from services.api.ratelimit import retry_after_header
from services.api.runtime import Runtime

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="jetpost"'}
SECURITY: list[dict[str, list[str]]] = [{"ApiKey": []}]


def _authorization(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    # from the ASGI scope (names come lower-cased): building `connection.headers` for
    # one header cost more than the rest of a cached key check
    for name, value in connection.scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")
    return ""


def _secret(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    scheme, _, value = _authorization(connection).partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Problem(401, "unauthorized", "an API key is required: 'Authorization: Bearer <key>'",
                      headers=CHALLENGE)  # fmt: skip
    return value.strip()


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiKey:
    rt: Runtime = connection.app.state["runtime"]
    secret = _secret(connection)
    digest = hash_key(secret)
    key = rt.keys.get(digest)
    if key is not None:
        return key
    now, client = time.monotonic(), _client(connection)
    if (wait := rt.auth_failures.waiting(client, now)) is not None:
        raise Problem(429, "too-many-requests", "too many failed API keys from this address",
                      headers=retry_after_header(wait))  # fmt: skip
    generation = rt.keys.generation
    if not rt.misses.missed(digest, now):
        async with rt.pool.connection() as conn:
            key = await find_key(conn, secret)
    if key is None:
        rt.misses.put(digest, now)
        rt.auth_failures.retry_after(client, now)  # counts the failure
        raise Problem(401, "unauthorized", "unknown or revoked API key", headers=CHALLENGE)
    rt.keys.put(digest, key, generation)
    return key


def _client(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return connection.client.host if connection.client else ""


def requires(scope: str) -> Guard:
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        key = await authenticate(connection)
        if not key.allows(scope):
            held = ", ".join(key.scopes)
            raise Problem(403, "forbidden", f"this API key lacks the {scope!r} scope ({held})")

    guard.__name__ = f"requires_{scope}"
    return guard


READ: list[Guard] = [requires("read")]
SEND: list[Guard] = [requires("send")]
ADMIN: list[Guard] = [requires("admin")]
