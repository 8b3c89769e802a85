"""When to try a failed webhook again, and when an endpoint has failed too long. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta


def next_delay(attempt: int, delays: Sequence[float]) -> float | None:
    """Seconds before the attempt after `attempt` (1-based), or None: it has failed."""
    return delays[attempt - 1] if 1 <= attempt <= len(delays) else None


def disable_due(failing_since: datetime | None, now: datetime, after: float) -> bool:
    return failing_since is not None and now - failing_since >= timedelta(seconds=after)
