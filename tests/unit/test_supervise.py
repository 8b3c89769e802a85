"""One component failing is logged and started again alone; the others run on
(issue 14 item 1: under `jetpost dev` a projection's exception stopped everything)."""

from __future__ import annotations

import asyncio

import pytest

from services.supervise import supervise
from shared.settings import ConfigError


async def test_a_failing_component_restarts_while_the_others_run() -> None:
    stop, third = asyncio.Event(), asyncio.Event()
    runs = {"flaky": 0, "steady": 0}

    async def flaky() -> None:
        runs["flaky"] += 1
        if runs["flaky"] < 3:
            raise RuntimeError("a bug")
        third.set()
        await stop.wait()

    async def steady() -> None:
        runs["steady"] += 1
        await stop.wait()

    tasks = [
        asyncio.create_task(supervise("flaky", flaky, stop, first_delay=0.01)),
        asyncio.create_task(supervise("steady", steady, stop, first_delay=0.01)),
    ]
    await asyncio.wait_for(third.wait(), 5)
    assert runs["steady"] == 1 and not any(t.done() for t in tasks)
    stop.set()
    await asyncio.gather(*tasks)


async def test_a_configuration_error_is_raised() -> None:
    async def misconfigured() -> None:
        raise ConfigError("JETPOST_X: bad")

    with pytest.raises(ConfigError):
        await supervise("x", misconfigured, asyncio.Event())
