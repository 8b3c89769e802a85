"""Which limits apply to a recipient domain, and what a "slow down" answer is. Pure.

The limits come from `throttles.yaml` beside this module, overridden key by key by
the JETPOST_THROTTLES file (same shape). `throttle.py` enforces them. Keys are
recipient domains, or MX hosts (`mx:*.google.com`) for direct delivery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULTS_FILE = Path(__file__).with_name("throttles.yaml")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|min|minute|h|hour)\s*$")
_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0}
_PERIODS |= {"h": 3600.0, "hour": 3600.0}
# What 421/451 replies say when the receiver wants us to send slower.
_SLOW_DOWN = re.compile(
    r"slow down|rate limit|ratelimit|too many|throttl|exceeded|unusual rate|try again later",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Limit:
    concurrency: int | None = None
    count: int | None = None  # mails per `period` seconds
    period: float = 1.0


def parse_rate(raw: str) -> tuple[int, float]:
    found = _RATE.match(raw)
    if not found:
        raise ValueError(f"expected a rate like 20/s, 600/min or 5000/h, got {raw!r}")
    count = int(float(found.group(1)))
    if count < 1:
        raise ValueError(f"a rate allows at least one mail, got {raw!r}")
    return count, _PERIODS[found.group(2)]


MX_PREFIX = "mx="  # throttle keys of MX hosts (`mx:` in the YAML; KV keys take no ':')


def parse_limits(data: Any, source: str) -> dict[str, Limit]:
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping of domain: limits")
    limits = {}
    for key, raw in data.items():
        if not isinstance(raw, dict) or set(raw) - {"concurrency", "rate"}:
            raise ValueError(f"{source}: {key}: expected {{concurrency: N, rate: N/s}}")
        concurrency = raw.get("concurrency")
        if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
            raise ValueError(f"{source}: {key}: concurrency is a whole number >= 1")
        count, period = parse_rate(str(raw["rate"])) if raw.get("rate") else (None, 1.0)
        name = str(key).lower()
        if name.startswith("mx:"):
            name = MX_PREFIX + name[3:]
        limits[name] = Limit(concurrency, count, period)
    return limits


def load_limits(override: Path | None) -> dict[str, Limit]:
    limits = parse_limits(yaml.safe_load(DEFAULTS_FILE.read_text()), str(DEFAULTS_FILE))
    if override is not None:
        limits |= parse_limits(yaml.safe_load(override.read_text()) or {}, str(override))
    return limits


def limit_for(limits: dict[str, Limit], domain: str) -> Limit | None:
    """The exact domain's limit, else the longest `*.suffix` match, else `*`. An MX
    host key (`mx=<host>`) matches only `mx:` entries, and `*` alone is not one."""
    domain = domain.lower()
    prefix = MX_PREFIX if domain.startswith(MX_PREFIX) else ""
    name = domain.removeprefix(prefix)
    if prefix + name in limits:
        return limits[prefix + name]
    labels = name.split(".")
    for i in range(1, len(labels)):
        found = limits.get(prefix + "*." + ".".join(labels[i:]))
        if found is not None:
            return found
    return None if prefix else limits.get("*")


def is_slow_down(code: int | None, response: str) -> bool:
    """A 421/451 reply asking us to send slower (rate limiting), not greylisting."""
    return code in (421, 450, 451) and bool(_SLOW_DOWN.search(response))


def slowed(limit: Limit, factor: float) -> Limit:
    """The limit while a domain asked us to slow down (factor < 1)."""
    if limit.count is None or factor >= 1:
        return limit
    return Limit(limit.concurrency, max(int(limit.count * factor), 1), limit.period)
