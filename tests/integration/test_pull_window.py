"""shared.pull.PullWindow against a real nats-server: each message is handed over as it
arrives (not after the batch in hand is done), never more than the window at once,
and pull requests are renewed while the consumer sits idle."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from shared.pull import PullWindow

STREAM, DURABLE = "PULL_TEST", "worker"


@pytest.fixture
async def stream(nc: Client) -> None:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=["pull.>"]))
    config = ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT, ack_wait=30)
    await js.add_consumer(STREAM, config)


@contextlib.asynccontextmanager
async def running(
    nc: Client, handle: Callable[[Msg], object], window: int, expires: float = 5.0
) -> AsyncIterator[PullWindow]:
    pull = PullWindow(nc, STREAM, DURABLE, window, expires=expires)
    task = asyncio.create_task(pull.run(handle, lambda: True))  # type: ignore[arg-type]
    try:
        yield pull
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)


async def test_a_message_does_not_wait_for_one_still_at_work(nc: Client, stream: None) -> None:
    release = asyncio.Event()
    done: list[bytes] = []

    async def handle(msg: Msg) -> None:
        if msg.data == b"slow":
            await release.wait()
        await msg.ack()
        done.append(msg.data)

    js = nc.jetstream()
    async with running(nc, handle, window=8):
        await js.publish("pull.a", b"slow")
        await asyncio.sleep(0.2)  # the slow one is in hand
        await js.publish("pull.b", b"quick")
        await until(lambda: b"quick" in done, timeout=3.0)
        assert done == [b"quick"]
        release.set()
        await until(lambda: len(done) == 2)


async def test_never_more_than_the_window_at_once_and_each_once(nc: Client, stream: None) -> None:
    gate = asyncio.Semaphore(0)
    at_work, most = 0, 0
    seen: list[bytes] = []

    async def handle(msg: Msg) -> None:
        nonlocal at_work, most
        at_work += 1
        most = max(most, at_work)
        await gate.acquire()
        seen.append(msg.data)
        await msg.ack()
        at_work -= 1

    js = nc.jetstream()
    for k in range(20):
        await js.publish(f"pull.{k}", str(k).encode())
    async with running(nc, handle, window=3):
        await until(lambda: at_work == 3)
        await asyncio.sleep(0.2)
        assert at_work == 3  # the rest waits on the server
        for _ in range(20):
            gate.release()
        await until(lambda: len(seen) == 20)
    assert most == 3 and sorted(seen) == sorted(str(k).encode() for k in range(20))
    info = await js.consumer_info(STREAM, DURABLE)
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_requests_are_renewed_while_idle(nc: Client, stream: None) -> None:
    done: list[bytes] = []

    async def handle(msg: Msg) -> None:
        await msg.ack()
        done.append(msg.data)

    js = nc.jetstream()
    async with running(nc, handle, window=4, expires=0.3):
        await asyncio.sleep(1.0)  # several requests expired meanwhile
        await js.publish("pull.late", b"late")
        await until(lambda: done == [b"late"], timeout=3.0)


async def test_cancelled_as_it_is_woken_it_stops(nc: Client, stream: None) -> None:
    """A cancellation that comes as the loop is woken (a message done, a request ended)
    stops it: asyncio.wait_for on Python 3.11 returned instead, and the loop went on."""

    async def handle(msg: Msg) -> None:
        await msg.ack()

    pull = PullWindow(nc, STREAM, DURABLE, 4)
    task = asyncio.create_task(pull.run(handle, lambda: True))
    await until(lambda: pull.asked == 4)  # its request sent: the loop waits to be woken
    await asyncio.sleep(0.05)
    pull.wake.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 3.0)
