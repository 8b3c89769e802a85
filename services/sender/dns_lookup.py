"""Where mail for a domain goes (RFC 5321 section 5.1, RFC 7505), with dnspython.

MX hosts by preference; no MX record: the domain's own A/AAAA; a null MX (`0 .`)
or a domain that does not exist: no route at all (the mail bounces at once). DNS
that fails (timeout, SERVFAIL) is transient. Answers are cached for their TTL
(capped), so a busy domain costs no lookup per mail.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.rdtypes.ANY.MX
import dns.resolver

MAX_CACHE_SECONDS = 300.0


class NoRoute(Exception):
    """The domain takes no mail (NXDOMAIN, null MX, no address): permanent."""


class LookupFailed(Exception):
    """DNS did not answer usefully this time: transient."""


@dataclass(frozen=True)
class MxHost:
    name: str  # the MX host name (what throttles and events name)
    addresses: tuple[str, ...]  # where to connect


def parse_resolver(raw: str) -> tuple[str, int]:
    """`127.0.0.1:5353` or `::1` (port 53) -> (address, port)."""
    if raw.startswith("["):
        host, _, port = raw[1:].partition("]:")
        return host, int(port or 53)
    if raw.count(":") == 1:
        host, _, port = raw.partition(":")
        return host, int(port)
    return raw, 53


def order_mx(records: list[tuple[int, str]]) -> list[str]:
    """MX host names by preference (ties by name, so the order is stable). Pure."""
    return [name for _, name in sorted(records)]


class MxResolver:
    def __init__(self, nameserver: str | None, timeout: float = 5.0) -> None:
        if nameserver:
            host, port = parse_resolver(nameserver)
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [host]
            self._resolver.port = port
        else:
            self._resolver = dns.asyncresolver.Resolver()
        self._resolver.lifetime = timeout
        self._cache: dict[str, tuple[float, list[MxHost]]] = {}

    async def route(self, domain: str) -> list[MxHost]:
        """The hosts to try, best first; NoRoute or LookupFailed otherwise."""
        cached = self._cache.get(domain)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        hosts, ttl = await self._route(domain)
        self._cache[domain] = (time.monotonic() + min(ttl, MAX_CACHE_SECONDS), hosts)
        return hosts

    async def _route(self, domain: str) -> tuple[list[MxHost], float]:
        try:
            answer = await self._resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN:
            raise NoRoute(f"domain {domain} does not exist (NXDOMAIN)") from None
        except dns.resolver.NoAnswer:
            # No MX: the domain itself is the host (RFC 5321 5.1)
            return [MxHost(domain, await self._addresses(domain))], 60.0
        except dns.exception.DNSException as exc:
            raise LookupFailed(f"MX lookup for {domain} failed: {exc}") from None
        records = [(r.preference, r.exchange.to_text(omit_final_dot=True).lower())
                   for r in answer if isinstance(r, dns.rdtypes.ANY.MX.MX)]  # fmt: skip
        if any(name in ("", ".") for _, name in records):
            raise NoRoute(f"domain {domain} accepts no mail (null MX, RFC 7505)")
        hosts = []
        for name in order_mx(records):
            try:
                hosts.append(MxHost(name, await self._addresses(name)))
            except (NoRoute, LookupFailed):
                continue  # a dangling MX host: try the others
        if not hosts:
            raise LookupFailed(f"no MX host of {domain} has an address")
        return hosts, float(answer.rrset.ttl if answer.rrset else 60)

    async def _addresses(self, name: str) -> tuple[str, ...]:
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._resolver.resolve(name, rdtype)
            except dns.resolver.NXDOMAIN:
                raise NoRoute(f"{name} does not exist (NXDOMAIN)") from None
            except dns.resolver.NoAnswer:
                continue
            except dns.exception.DNSException as exc:
                raise LookupFailed(f"{rdtype} lookup for {name} failed: {exc}") from None
            found.extend(r.to_text() for r in answer)
        if not found:
            raise NoRoute(f"{name} has no A/AAAA address")
        return tuple(found)
