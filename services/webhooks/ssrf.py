"""Where webhooks may go: no cloud metadata, link-local, or (unless
JETPOST_WEBHOOK_ALLOW_PRIVATE) loopback and private addresses; https only unless the
same flag. Checked when an endpoint is registered, and again on every connection by
`GuardedBackend`, which connects only to the address it has just checked, so a name
that resolves elsewhere later (DNS rebinding) does not get through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Refused always, whatever the flag: metadata services live here.
ALWAYS_REFUSED = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32",
              "0.0.0.0/8", "::/128", "224.0.0.0/4", "ff00::/8", "240.0.0.0/4")
)  # fmt: skip
MAX_URL = 2048


class Refused(ValueError):
    """A webhook URL or address jetpost will not send to."""


def check_address(ip: IP, allow_private: bool) -> None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for network in ALWAYS_REFUSED:
        if ip.version == network.version and ip in network:
            raise Refused(f"{ip} is a link-local, metadata or reserved address")
    if not ip.is_global and not allow_private:
        raise Refused(f"{ip} is a loopback or private address")


def check_url(url: str, allow_private: bool) -> tuple[str, int]:
    """The URL's shape (pure): returns its host and port."""
    if len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 for c in url):
        raise Refused("not a usable URL")
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise Refused(f"the URL must be {' or '.join(schemes)}")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise Refused("the URL needs a host and no user:password@")
    if parts.fragment:
        raise Refused("the URL may not have a #fragment")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("the URL's port is not a number from 0 to 65535") from None
    try:
        literal: IP | None = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None  # a name: checked where it resolves
    if literal is not None:
        check_address(literal, allow_private)
    return parts.hostname, port


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Refused(f"{host} does not resolve: {exc.strerror}") from None
    return [str(info[4][0]) for info in infos]


async def safe_addresses(
    host: str, port: int, allow_private: bool, resolver: Resolver = system_resolver
) -> list[str]:
    """Every address the host resolves to, if every one of them is allowed."""
    addresses = await resolver(host, port)
    if not addresses:
        raise Refused(f"{host} does not resolve")
    for address in addresses:
        check_address(ipaddress.ip_address(address.split("%")[0]), allow_private)
    return addresses


async def check_target(url: str, allow_private: bool, resolver: Resolver = system_resolver) -> None:
    """At registration: the URL's shape and where its host resolves now."""
    host, port = check_url(url, allow_private)
    await safe_addresses(host, port, allow_private, resolver)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving and checking before every connect. TLS is
    started by httpcore afterwards with the URL's host name, so certificates are still
    checked against the name, not the address."""

    def __init__(self, allow_private: bool, resolver: Resolver = system_resolver) -> None:
        self.allow_private = allow_private
        self.resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await safe_addresses(host, port, self.allow_private, self.resolver)
        except Refused as exc:
            raise httpcore.ConnectError(f"refused: {exc}") from None
        return await self._inner.connect_tcp(
            addresses[0], port, timeout=timeout, local_address=local_address,
            socket_options=socket_options,
        )  # fmt: skip

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("refused: unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
