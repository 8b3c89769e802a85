"""One component of a process failing must not stop the others: `jetpost dev` runs
every service, the projections, the feedback receiver and an embedded nats-server
side by side, and a bug in one (an exception it did not expect) used to take all of
them down, again on every start.

`supervise` runs a component until `stop`; when it raises, the error is logged with
its traceback and the component alone is started again after a back-off (doubling,
capped), while everything else keeps running. A configuration error cannot heal by
itself and is raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from shared.settings import ConfigError

log = logging.getLogger("jetpost")

Component = Callable[[], Awaitable[None]]


async def supervise(
    name: str,
    component: Component,
    stop: asyncio.Event,
    *,
    first_delay: float = 1.0,
    max_delay: float = 30.0,
) -> None:
    delay = first_delay
    while not stop.is_set():
        try:
            await component()
        except ConfigError:
            raise
        except Exception:  # deliberately broad: any bug of one component stays in it
            log.exception("%s failed; restarting it in %.1fs (the rest keeps running)",
                          name, delay)  # fmt: skip
        else:
            if stop.is_set():
                return
            log.warning("%s stopped by itself; restarting it in %.1fs", name, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, max_delay)
