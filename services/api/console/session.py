"""Console sign-in: an API key opens a session; the browser keeps only a random token
in an HttpOnly, SameSite=Strict cookie, the server keeps its hash (console_sessions),
so every request is checked against the database: a revoked key, an expired or a
signed-out session is refused at once. Forms carry the session's CSRF token; the
sign-in form (no session yet) a double-submit token from its own cookie."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.datastructures import Cookie
from litestar.di import NamedDependency

from services.api.keys import ApiKey, find_key
from services.api.runtime import Runtime

COOKIE = "jp_console"
LOGIN_CSRF_COOKIE = "jp_console_login"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
TTL_HOURS = 8
PATH = "/console"


class SignedOut(Exception):
    """No live session: the console answers with the sign-in page."""


class BadCsrf(Exception):
    """A form without the session's CSRF token (or with another one)."""


@dataclass(frozen=True)
class ConsoleSession:
    token_hash: str
    key: ApiKey
    csrf: str

    def allows(self, scope: str) -> bool:
        return self.key.allows(scope)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def cookie(rt: Runtime, name: str, value: str, max_age: int | None = None) -> Cookie:
    secure = rt.settings.public_base_url.startswith("https://")
    return Cookie(
        key=name,
        value=value,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
        max_age=max_age,
    )


async def open_session(rt: Runtime, secret: str) -> tuple[str, ApiKey] | None:
    """A new session for a live key: (cookie token, key); None for an unknown key."""
    async with rt.pool.connection() as conn:
        key = await find_key(conn, secret.strip())
        if key is None:
            return None
        token = secrets.token_urlsafe(32)
        await conn.execute("DELETE FROM console_sessions WHERE expires_at < now()")
        await conn.execute(
            "INSERT INTO console_sessions (token_hash, key_id, csrf, expires_at)"
            " VALUES (%s, %s, %s, now() + make_interval(hours => %s))",
            (_hash(token), key.id, secrets.token_urlsafe(24), TTL_HOURS),
        )
    return token, key


async def load_session(rt: Runtime, request: Request[Any, Any, Any]) -> ConsoleSession:
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignedOut
    async with rt.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT s.token_hash, s.csrf, k.id, k.name, k.scopes FROM console_sessions s"
            " JOIN api_keys k ON k.id = s.key_id"
            " WHERE s.token_hash = %s AND s.expires_at > now() AND k.revoked_at IS NULL",
            (_hash(token),),
        )
        row = await cur.fetchone()
    if row is None:
        raise SignedOut
    return ConsoleSession(row[0], ApiKey(row[2], row[3], tuple(row[4])), row[1])


async def close_session(rt: Runtime, session: ConsoleSession) -> None:
    async with rt.pool.connection() as conn:
        await conn.execute(
            "DELETE FROM console_sessions WHERE token_hash = %s", (session.token_hash,)
        )


def same_token(expected: str, given: object) -> bool:
    return isinstance(given, str) and bool(given) and secrets.compare_digest(expected, given)


async def check_csrf(request: Request[Any, Any, Any], expected: str) -> dict[str, Any]:
    """The submitted form, once its CSRF token (field or htmx header) matches."""
    form = dict(await request.form())
    given = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not same_token(expected, given):
        raise BadCsrf
    return form


Session = NamedDependency[ConsoleSession]  # the `session` dependency of console routes
Form = NamedDependency[dict[str, Any]]  # a POSTed form, its CSRF token checked
Rt = NamedDependency[Runtime]


async def provide_form(request: Request[Any, Any, Any], session: Session) -> dict[str, Any]:
    """The `form` dependency: every console route that changes something takes it, so
    none reads a form whose CSRF token was not checked."""
    return await check_csrf(request, session.csrf)
