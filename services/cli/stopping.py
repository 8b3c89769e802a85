"""Ctrl-C and SIGTERM set an event that long-running commands wait on, so they stop
cleanly (drain, close pools, stop child servers) instead of dying mid-write."""

import asyncio
import signal


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
