"""A circuit breaker per provider. Pure: the clock is passed in.

closed: mail goes through; `threshold` failures within `window` seconds open it.
open: nothing goes through until `cooldown` has passed; then half-open.
half_open: one probe goes through; its success closes the circuit, its failure
opens it again for another cool-down.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

State = Literal["closed", "open", "half_open"]


@dataclass
class CircuitBreaker:
    threshold: int = 5
    window: float = 30.0
    cooldown: float = 30.0
    state: State = "closed"
    opened_at: float = 0.0
    probing: bool = False  # the half-open probe is out
    _failures: deque[float] = field(default_factory=deque)

    def allow(self, now: float) -> bool:
        """May a mail go through now? (Half-open lets exactly one probe out.)"""
        if self.state == "open" and now - self.opened_at >= self.cooldown:
            self.state, self.probing = "half_open", False
        if self.state == "closed":
            return True
        if self.state == "half_open" and not self.probing:
            self.probing = True
            return True
        return False

    def retry_in(self, now: float) -> float:
        """Seconds until this circuit lets a probe through (0 when it would now)."""
        if self.state != "open":
            return 0.0
        return max(self.cooldown - (now - self.opened_at), 0.0)

    def success(self) -> None:
        self.state, self.probing = "closed", False
        self._failures.clear()

    def failure(self, now: float) -> None:
        if self.state == "half_open":
            self._open(now)
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.window:
            self._failures.popleft()
        if self.state == "closed" and len(self._failures) >= self.threshold:
            self._open(now)

    def _open(self, now: float) -> None:
        self.state, self.opened_at, self.probing = "open", now, False
        self._failures.clear()
