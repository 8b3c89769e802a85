"""A cancel that lands between the sender's read of the log and its `attempted`: the
attempt is appended with compare-and-set on the sequence the sender read, so the
cancel makes it conflict. Nothing is sent, no `attempted` follows the `cancelled`,
and no second read of the log was needed on the way (real nats-server, real SMTP
sink)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from services.capture import CaptureSink
from services.sender import handlers, history
from services.sender.handlers import Sender
from services.sender.registry import build_router
from shared.eventlog import append
from shared.events import Cancelled, Envelope, Event, Rendered, event_id_for
from shared.mailbox import Mailbox
from shared.settings import Settings
from shared.subjects import EVT_STREAM, event_subject
from tests.eventlog_reader import types_of


@dataclass
class Delivery:
    """What the sender's handler uses of FastStream's NatsMessage, over a real one."""

    raw_message: Msg
    settled: list[str] = field(default_factory=list)

    async def ack(self) -> None:
        await self.raw_message.ack()
        self.settled.append("ack")

    async def nack(self, delay: float | None = None) -> None:
        await self.raw_message.nak(delay=delay)
        self.settled.append("nak")


def rendered(message_id: str) -> Rendered:
    return Rendered(
        event_id=event_id_for(message_id, "rendered"),
        message_id=message_id,
        envelope=Envelope(
            sender=Mailbox(email="a@jetpost.test"), to=(Mailbox(email="b@example.com"),)
        ),
        subject="Hi",
        text="hello\n",
        headers={"Message-ID": f"<{message_id}@jetpost.test>"},
    )


async def delivered(js: JetStreamContext, message_id: str) -> Delivery:
    """The `rendered` event as a consumer gets it (real metadata, real ack)."""
    config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT)
    sub = await js.pull_subscribe(event_subject(message_id, "rendered"), stream=EVT_STREAM,
                                  config=config)  # fmt: skip
    (msg,) = await sub.fetch(1, timeout=5)
    return Delivery(msg)


@pytest.fixture
def cancel_after_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sender's read of the log, followed at once by a cancel landing; the ids
    read are listed."""
    read = history.last_event
    calls: list[str] = []

    async def read_then_cancel(js_: JetStreamContext, message_id: str, *rest: Any) -> Any:
        found = await read(js_, message_id, *rest)
        calls.append(message_id)
        cancel = Cancelled(event_id=event_id_for(message_id, "cancelled"), message_id=message_id,
                           reason="changed my mind")  # fmt: skip
        await append(js_, cancel)
        return found

    monkeypatch.setattr(handlers, "last_event", read_then_cancel)
    return calls


async def test_a_cancel_after_the_read_makes_the_attempt_conflict(
    settings: Settings,
    js: JetStreamContext,
    sink: CaptureSink,
    cancel_after_read: list[str],
) -> None:
    mid = uuid.uuid4().hex
    event: Event = rendered(mid)
    await append(js, event)
    router = build_router(settings)
    await router.start()
    try:
        delivery = await delivered(js, mid)
        await Sender(js, router, settings).handle(delivery)  # type: ignore[arg-type]
    finally:
        await router.close()
    assert cancel_after_read == [mid]
    assert delivery.settled == ["ack"]
    assert await types_of(js, mid) == ["rendered", "cancelled"]  # no `attempted` after it
    assert sink.received == []
