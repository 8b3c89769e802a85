"""shared.raw_inbox on a real nats-server: a raw subscription gets each delivery's
bytes (headers as sent), the client's other subscriptions go on as before, and a
handler that raises costs its delivery, not the connection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from nats.aio.client import Client

from shared.raw_inbox import header, subscribe_raw, unsubscribe_raw


async def until(check: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_raw_deliveries_beside_ordinary_subscriptions(nc: Client) -> None:
    raw: list[tuple[bytes, bytes, bytes, bytes | None]] = []

    def handler(subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        if data == b"boom":
            raise RuntimeError("a bug in the handler")
        raw.append((subject, reply, data, headers))

    sub = await subscribe_raw(nc, "raw.>", handler)
    plain = await nc.subscribe("plain")
    await nc.publish("raw.a", b"boom")  # raises in the handler: logged, passed over
    await nc.publish("raw.b", b"one", reply="r.1", headers={"traceparent": "00-abc-def-01"})
    await nc.publish("plain", b"two", headers={"X-Kept": "yes"})
    msg = await plain.next_msg(timeout=5)
    await until(lambda: raw)
    assert raw == [(b"raw.b", b"r.1", b"one", raw[0][3])]
    assert header(raw[0][3], b"traceparent:") == "00-abc-def-01"
    assert header(raw[0][3], b"missing:") is None
    assert msg.data == b"two" and msg.headers == {"X-Kept": "yes"}  # nats-py's own path
    await unsubscribe_raw(nc, sub)
    await nc.publish("raw.c", b"three")
    await nc.flush()
    assert nc.is_connected and len(raw) == 1
