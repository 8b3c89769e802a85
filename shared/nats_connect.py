"""One way for every jetpost process to reach NATS.

The servers (JETPOST_NATS_URL: one URL or a cluster's comma-separated list), auth (a
creds file, an NKEY seed file, or user and password) and TLS (CA, client cert) come
from the settings. The client takes whichever server answers; once connected it
reconnects forever (to any node: the cluster gossips its members). At start-up it
waits at most JETPOST_NATS_CONNECT_TIMEOUT, then fails with an error naming the
servers it tried, instead of hanging until one comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faststream.nats.security import NatsCredentials, NatsNKey, NatsSecurity, NatsUserPassword
from nats.aio.client import Client

from shared.settings import Settings, load_settings, parse_nats_servers, redact_url

# Settings, or a bare URL (list) where no auth is needed: tests and benchmarks.
NatsTarget = Settings | str
T = TypeVar("T")

log = logging.getLogger("jetpost.nats")

TRANSIENT = (OSError, TimeoutError)
RECONNECT_WAIT = 0.5  # seconds between two tries of one server


class NatsUnreachable(ConnectionError):
    """No configured NATS server answered in time."""


def as_settings(target: NatsTarget) -> Settings:
    return target if isinstance(target, Settings) else load_settings(nats_url=target)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not (settings.nats_tls_ca or settings.nats_tls_cert):
        return None
    ca = str(settings.nats_tls_ca) if settings.nats_tls_ca else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    if settings.nats_tls_cert and settings.nats_tls_key:
        context.load_cert_chain(str(settings.nats_tls_cert), str(settings.nats_tls_key))
    return context


def connect_options(target: NatsTarget) -> dict[str, Any]:
    """Keyword arguments for `nats.connect` and FastStream's `NatsBroker`."""
    settings = as_settings(target)
    options: dict[str, Any] = {
        "servers": parse_nats_servers(settings.nats_address),
        "max_reconnect_attempts": -1,  # once up, wait for NATS to come back
        "reconnect_time_wait": RECONNECT_WAIT,
        "connect_timeout": min(5.0, settings.nats_connect_timeout),
    }
    if settings.nats_creds:
        options["user_credentials"] = str(settings.nats_creds)
    if settings.nats_nkey_seed:
        options["nkeys_seed"] = str(settings.nats_nkey_seed)
    if settings.nats_user:
        options["user"] = settings.nats_user
    if settings.nats_password:
        options["password"] = settings.nats_password.get_secret_value()
    context = tls_context(settings)
    if context is not None:
        options["tls"] = context
    return options


def broker_options(target: NatsTarget) -> dict[str, Any]:
    """The same for FastStream's `NatsBroker`, which takes auth and TLS as one `security`."""
    options = connect_options(target)
    context = options.pop("tls", None)
    creds, seed = options.pop("user_credentials", None), options.pop("nkeys_seed", None)
    user, password = options.pop("user", None), options.pop("password", None)
    security: NatsSecurity | None = None
    if creds:
        security = NatsCredentials.from_file(creds, ssl_context=context)
    elif seed:
        security = NatsNKey.from_file(seed, ssl_context=context)
    elif user is not None:
        security = NatsUserPassword(user, password or "", ssl_context=context)
    elif context is not None:
        security = NatsSecurity(ssl_context=context)
    if security is not None:
        options["security"] = security
    return options


def _unreachable(target: NatsTarget, waited: float, errors: list[BaseException]) -> NatsUnreachable:
    servers = ", ".join(redact_url(s) for s in connect_options(target)["servers"])
    # a server's own answer (authorization violation...) says more than the broken
    # socket that follows it
    told = [e for e in errors if not isinstance(e, OSError)] or errors
    last = f"; last error: {told[-1]!r}" if told else ""
    return NatsUnreachable(f"no NATS server answered within {waited:g}s (tried {servers}){last}")


async def bounded(target: NatsTarget, connecting: Awaitable[T], errors: list[BaseException]) -> T:
    """`connecting` within JETPOST_NATS_CONNECT_TIMEOUT, else NatsUnreachable."""
    waited = as_settings(target).nats_connect_timeout
    try:
        return await asyncio.wait_for(connecting, waited)
    except TimeoutError:
        raise _unreachable(target, waited, errors) from None


async def connect(
    target: NatsTarget,
    *,
    name: str = "jetpost",
    error_cb: Callable[[Exception], Awaitable[None]] | None = None,
    **callbacks: Any,
) -> Client:
    """A connected client; `callbacks` are nats-py's (disconnected_cb, reconnected_cb...)."""
    errors: list[BaseException] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)
        del errors[:-5]
        if error_cb is not None:
            await error_cb(exc)
        elif nc.is_connected or nc.is_reconnecting:
            log.warning("NATS: %r", exc)

    options = connect_options(target)
    nc = Client()
    try:
        await bounded(target, nc.connect(**options, name=name, error_cb=on_error, **callbacks),
                      errors)  # fmt: skip
    except BaseException:
        # what a cancelled first connect left open; a client that never got as far as a
        # server refuses to close (an assertion), which leaves nothing to close
        with contextlib.suppress(AssertionError, *TRANSIENT):
            await nc.close()
        raise
    return nc
