"""SMTP peers misbehaving (issue 14, fault suite): answering 421 for a while,
dropping the connection after the mail's data (after keeping it), hanging past the
sender's timeout, and answering 550 for unknown users. Every message ends in exactly
one terminal state (delivered, or bounced for the 550s); a mail the peer kept twice
(a dropped reply makes that unavoidable) shows each SMTP transaction in its log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext

from services.capture import CapturedMail, CaptureSink
from tests.faults.harness import System, audit, read_models_agree, send, settle

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


class FaultyPeer(CaptureSink):
    """The capture sink, made unreliable on purpose and by the numbers."""

    refuse_for = 3.0  # seconds after the first DATA during which every mail gets 421
    drop_every = 9  # every 9th transaction: the mail is kept, then the connection drops
    hang_every = 13  # every 13th: no reply for longer than the sender waits
    hang_for = 3.0

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.refuse_until: float | None = None
        self.transactions = 0
        self.faults: dict[str, int] = {"421": 0, "drop": 0, "hang": 0, "550": 0}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = asyncio.get_running_loop().time()
        self.refuse_until = self.refuse_until or now + self.refuse_for
        self.transactions += 1
        if now < self.refuse_until:
            self.faults["421"] += 1
            return "421 4.3.2 busy, try again later"
        if any(r.startswith("bad-") for r in envelope.rcpt_tos):
            self.faults["550"] += 1
            return "550 5.1.1 no such user"
        if self.transactions % self.hang_every == 0:
            self.faults["hang"] += 1
            await asyncio.sleep(self.hang_for)
            return "451 4.4.2 too late"
        if self.transactions % self.drop_every == 0:
            self.faults["drop"] += 1
            async with self._changed:  # kept, as a real server may, then the line drops
                mail = CapturedMail(envelope.mail_from, tuple(envelope.rcpt_tos),
                                    envelope.original_content)  # fmt: skip
                self.received.append(mail)
                self._changed.notify_all()
            server.transport.close()
            return "250 OK"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[CaptureSink]:
    """Overrides the suite's sink: the settings' SMTP URL points at the faulty peer."""
    peer = FaultyPeer(tmp_path / "capture")
    await peer.start()
    yield peer
    await peer.stop()


async def test_misbehaving_smtp_peers(
    system: System, js: JetStreamContext, sink: CaptureSink, database_url: str
) -> None:
    assert isinstance(sink, FaultyPeer)
    system.start()
    good = [uuid.uuid4().hex for _ in range(100)]
    bad = [uuid.uuid4().hex for _ in range(10)]
    await send(js, good)
    await asyncio.gather(*(send(js, [mid], to=f"bad-{mid[:8]}@example.com") for mid in bad))
    ids = good + bad
    await settle(js, ids, timeout=150, system=system)
    result = await audit(js, ids, sink)
    print(f"faults: {sink.faults}; outcomes: {dict(result.outcomes)}; "
          f"copies: {sum(result.copies.values())} of {len(good)}")  # fmt: skip
    assert all(sink.faults.values()), sink.faults  # every kind of fault happened
    assert result.outcomes == {"delivered": len(good), "bounced": len(bad)}
    assert set(result.copies) == set(good)
    await read_models_agree(js, database_url, ids)
    assert not result.invisible, (
        f"{len(result.invisible)} mails kept more often than their log shows"
    )
