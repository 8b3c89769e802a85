"""Ordered failover between providers, each behind its own circuit breaker.

The router is a `Mailer` over other `Mailer`s and knows nothing of any one of them:
it reads only `Outcome.connection`. A connection-level failure (refused, timeout,
TLS, 421, a drop) counts against that provider and the mail goes on to the next
provider at once, inside the same attempt. A recipient-level answer (550 user
unknown, 452 mailbox full) is the recipient's fate: it is the outcome, no failover.
Nor is a connection lost during DATA failed over (`uncertain`: the first provider
may have the mail); it still counts against that provider.
With every circuit open the mail is deferred with `all_open` set: the sender naks
it until the first circuit lets a probe through, and it never fails for that.

Circuit changes go to `on_change(provider, state)` (the app logs them and publishes
them on `mail.ops.provider.<name>.<state>`). Breakers are per process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from services.sender.circuit import CircuitBreaker, State
from services.sender.mailer import Mail, Mailer, ThrottleKeyed
from services.sender.outcome import Outcome

log = logging.getLogger("jetpost.sender.routing")

OnChange = Callable[[str, State], Awaitable[None]]
ALL_OPEN = "all providers unavailable (circuits open)"


class Router:
    def __init__(
        self,
        providers: Sequence[Mailer],
        *,
        threshold: int,
        window: float,
        cooldown: float,
        on_change: OnChange | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not providers:
            raise ValueError("at least one provider")
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names must differ: {names}")
        self.providers = list(providers)
        self.breakers = {p.name: CircuitBreaker(threshold, window, cooldown) for p in providers}
        self.on_change = on_change
        self._clock = clock
        self.name = names[0]
        # looked up once: isinstance on a runtime-checkable Protocol is slow, per mail
        self._keyed = {p.name: p for p in providers if isinstance(p, ThrottleKeyed)}

    def planned(self) -> str:
        """The provider a mail would go to first now (for the `attempted` event)."""
        now = self._clock()
        for provider in self.providers:
            breaker = self.breakers[provider.name]
            if breaker.state == "closed" or breaker.retry_in(now) == 0:
                return provider.name
        return self.providers[0].name

    async def throttle_keys(self, recipients: tuple[str, ...]) -> list[str]:
        """Extra throttle keys from the provider a mail would go to first (mx://
        names MX hosts); [] for providers that have none."""
        keyed = self._keyed.get(self.planned())
        return [] if keyed is None else await keyed.throttle_keys(recipients)

    def retry_in(self) -> float:
        """Seconds until some circuit lets mail through again."""
        now = self._clock()
        return min(b.retry_in(now) for b in self.breakers.values())

    async def start(self) -> None:
        for provider in self.providers:
            await provider.start()

    async def close(self) -> None:
        for provider in self.providers:
            await provider.close()

    async def send(self, mail: Mail) -> Outcome:
        last: Outcome | None = None
        for provider in self.providers:
            breaker = self.breakers[provider.name]
            before = breaker.state
            allowed = breaker.allow(self._clock())
            await self._changed(provider.name, before, breaker.state)
            if not allowed:
                continue
            before = breaker.state
            outcome = replace(await provider.send(mail), provider=provider.name)
            if outcome.connection:
                breaker.failure(self._clock())
            else:
                breaker.success()
            await self._changed(provider.name, before, breaker.state)
            if not outcome.connection or outcome.uncertain:
                return outcome  # the recipient's fate, or a mail the server may have
            last = outcome
            log.warning("provider %s failed (%s)", provider.name, outcome.response)
        if last is not None:
            return last
        return Outcome("deferred", None, ALL_OPEN, connection=True, provider="none")

    async def _changed(self, name: str, before: State, after: State) -> None:
        if before == after:
            return
        log.warning("provider %s circuit %s -> %s", name, before, after)
        if self.on_change is not None:
            await self.on_change(name, after)
