"""What happens to a message whose handler raised something unexpected: retried with a
back-off a few times, then its failure is recorded and it is let go."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from shared.consumers import GIVE_UP_AFTER, on_failure


class FakeMessage:
    def __init__(self, delivered: int) -> None:
        self.raw_message = SimpleNamespace(
            subject="mail.evt.m1.rendered", metadata=SimpleNamespace(num_delivered=delivered)
        )
        self.calls: list[tuple[str, Any]] = []

    async def ack(self) -> None:
        self.calls.append(("ack", None))

    async def nack(self, delay: float | None = None) -> None:
        self.calls.append(("nack", delay))


async def test_retried_with_growing_delay_before_giving_up() -> None:
    recorded: list[str] = []

    async def give_up(msg: Any, exc: BaseException) -> None:
        recorded.append(str(exc))

    delays = []
    for delivered in range(1, GIVE_UP_AFTER):
        msg = FakeMessage(delivered)
        await on_failure(msg, KeyError("bug"), "sender", give_up)  # type: ignore[arg-type]
        [(verb, delay)] = msg.calls
        assert verb == "nack"
        delays.append(delay)
    assert delays == sorted(delays) and delays[0] > 0 and recorded == []

    last = FakeMessage(GIVE_UP_AFTER)
    await on_failure(last, KeyError("bug"), "sender", give_up)  # type: ignore[arg-type]
    assert last.calls == [("ack", None)] and recorded == ["'bug'"]


async def test_not_let_go_when_the_failure_cannot_be_recorded() -> None:
    async def broken(msg: Any, exc: BaseException) -> None:
        raise OSError("NATS is away")

    msg = FakeMessage(GIVE_UP_AFTER + 3)
    await on_failure(msg, ValueError("x"), "intake", broken)  # type: ignore[arg-type]
    assert [verb for verb, _ in msg.calls] == ["nack"]
