"""The event loop of every jetpost process."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on uvloop where it is installed (a dependency, except on Windows).
    The pipeline and the API spend much of their time in the loop itself (task
    switches, sockets), which libuv does several times cheaper: about twice the
    requests per second of the default loop for the same API handlers."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover (a dependency except on Windows)
        return asyncio.run(main)
    return uvloop.run(main)
