"""Connection slots: a free slot goes to waiting non-bulk mail before bulk mail."""

from __future__ import annotations

import asyncio

import pytest

from services.sender.slots import Slots


async def test_other_mail_overtakes_waiting_bulk_mail() -> None:
    slots = Slots(1)
    order: list[str] = []
    release = asyncio.Event()

    async def send(name: str, bulk: bool) -> None:
        async with slots.held(bulk=bulk):
            order.append(name)
            await release.wait()

    first = asyncio.create_task(send("bulk-0", True))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(send(f"bulk-{k}", True)) for k in (1, 2, 3)]
    await asyncio.sleep(0)
    urgent = asyncio.create_task(send("reset", False))
    await asyncio.sleep(0)
    assert order == ["bulk-0"]
    release.set()
    await asyncio.gather(first, urgent, *waiting)
    assert order == ["bulk-0", "reset", "bulk-1", "bulk-2", "bulk-3"]
    assert slots.free == 1


async def test_a_cancelled_waiter_gives_up_its_place_and_no_slot_is_lost() -> None:
    slots = Slots(1)
    release = asyncio.Event()

    async def hold() -> None:
        async with slots.held():
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter.cancel()
    release.set()
    await holder
    assert waiter.cancelled() and slots.free == 1
    async with slots.held(bulk=True):
        assert slots.free == 0


async def test_a_waiter_cancelled_as_its_slot_is_released_ends_cancelled() -> None:
    """The release that comes between the cancel and the waiter's wake-up drops the
    cancelled waiter from the queue: the waiter still ends cancelled (it raised a
    ValueError from `deque.remove` instead, seen as a handler error at a stop)."""
    slots = Slots(1)
    holding = slots.held()
    await holding.__aenter__()
    waiting = asyncio.create_task(slots._acquire(False))
    await asyncio.sleep(0)  # it waits for the slot
    waiting.cancel()
    await holding.__aexit__(None, None, None)  # the release passes over the cancelled waiter
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert slots.free == 1
