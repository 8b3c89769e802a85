"""`mx://`: direct delivery to each recipient domain's MX hosts, with no relay.

Recipients are grouped by domain and each domain gets one SMTP transaction with all
its recipients. Its MX hosts are tried by preference (dns_lookup.py); a host that
refuses the connection, times out, answers 421 or drops is left for the next one
(not one lost during DATA: it may have the mail). STARTTLS is used when offered
(opportunistic, RFC 7435: certificates are not checked, as no MX can be expected to
present one for its name). Connections are pooled per MX host.

How answers map: 250 -> delivered; 5xx -> bounced; 4xx -> deferred; NXDOMAIN, a null
MX or no address -> bounced at once (5.1.2); a DNS failure or every MX host down ->
deferred. Each domain is its own route: its unreachable MX hosts defer its mail but
are not counted against the `mx` provider (one dead domain must not open the circuit
for every domain). A message to several domains that is taken by one of them counts
as delivered, the other domains' answers listed under `refused` (retrying it would
send a second copy to the domains that took it).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import replace

from services.sender.dns_lookup import LookupFailed, MxHost, MxResolver, NoRoute
from services.sender.mailer import Mail
from services.sender.outcome import Outcome
from services.sender.smtp_pool import SmtpPool
from services.sender.throttle_rules import MX_PREFIX


def by_domain(recipients: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for rcpt in recipients:
        grouped[rcpt.rpartition("@")[2].lower()].append(rcpt)
    return {domain: tuple(rcpts) for domain, rcpts in grouped.items()}


def combine(outcomes: dict[str, tuple[tuple[str, ...], Outcome]]) -> Outcome:
    """One outcome for a mail sent to several domains. Pure."""
    results = [o for _, o in outcomes.values()]
    if len(results) == 1:
        return results[0]
    hosts = ",".join(sorted({o.host for o in results if o.host}))
    refused: dict[str, str] = {}
    for rcpts, outcome in outcomes.values():
        refused.update(outcome.refused)
        if outcome.kind != "delivered":
            refused.update({r: outcome.response for r in rcpts if r not in outcome.refused})
    delivered = [o for o in results if o.kind == "delivered"]
    if delivered:
        first = delivered[0]
        return Outcome("delivered", first.code, first.response, refused, host=hosts)
    deferred = [o for o in results if o.kind == "deferred"]
    worst = deferred[0] if deferred else results[0]
    return Outcome(worst.kind, worst.code, worst.response, refused, host=hosts)


class MxMailer:
    def __init__(
        self,
        resolver: MxResolver,
        *,
        port: int,
        pool_size: int,
        timeout: float,
        name: str = "mx",
    ) -> None:
        self.name = name
        self._resolver = resolver
        self._port = port
        self._pool_size = pool_size
        self._timeout = timeout
        self._pools: dict[str, SmtpPool] = {}

    async def start(self) -> None:
        """Nothing to open: pools are made per MX host on first use."""

    async def throttle_keys(self, recipients: tuple[str, ...]) -> list[str]:
        """The preferred MX host of each recipient domain, as throttle keys
        (`mx=<host>`): limits per MX host hold whichever domains share it."""
        keys = []
        for domain in by_domain(recipients):
            try:
                hosts = await self._resolver.route(domain)
            except (NoRoute, LookupFailed):
                continue  # the send reports it
            keys.append(MX_PREFIX + hosts[0].name)
        return keys

    async def send(self, mail: Mail) -> Outcome:
        groups = by_domain(mail.recipients)
        results = await asyncio.gather(*(self._send_domain(mail, d, r) for d, r in groups.items()))
        return combine({d: (groups[d], o) for d, o in zip(groups, results, strict=True)})

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.close()

    async def _send_domain(self, mail: Mail, domain: str, rcpts: tuple[str, ...]) -> Outcome:
        try:
            hosts = await self._resolver.route(domain)
        except NoRoute as exc:
            return Outcome("bounced", 550, f"550 5.1.2 {exc}")
        except LookupFailed as exc:
            return Outcome("deferred", None, f"4.4.3 {exc}")
        part = Mail(mail.data, mail.sender, rcpts, mail.smtputf8)
        outcome = Outcome("deferred", None, f"4.4.1 no MX host of {domain} answered")
        for host in hosts:
            outcome = await self._pool(host).send(part)
            if not outcome.connection or outcome.uncertain:
                return replace(outcome, connection=False)
        # every MX host down: this domain's route, not the provider's (see above)
        return replace(outcome, connection=False)

    def _pool(self, host: MxHost) -> SmtpPool:
        pool = self._pools.get(host.name)
        if pool is None:
            pool = self._pools[host.name] = SmtpPool(
                host.addresses[0],
                self._port,
                size=self._pool_size,
                timeout=self._timeout,
                start_tls=None,  # when offered
                validate_certs=False,
                server_name=host.name,
            )
        return pool
