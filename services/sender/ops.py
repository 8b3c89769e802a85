"""Operations events: circuit changes and "slow down" answers, published on
`mail.ops.>` (stream MAIL_OPS) so `jetpost tap` shows them beside the mail events.
A failed publish is logged, never allowed to stop a send."""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext

from shared.consumers import TRANSIENT_ERRORS
from shared.subjects import OPS_STREAM, ops_subject

log = logging.getLogger("jetpost.sender.ops")


class OpsPublisher:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._origin = f"{socket.gethostname()}:{os.getpid()}"

    async def circuit(self, provider: str, state: str) -> None:
        await self._publish("provider", provider, state, {"provider": provider})

    async def slowed(self, domain: str, factor: float, seconds: float) -> None:
        body = {"domain": domain, "rate_factor": factor, "for_seconds": seconds}
        await self._publish("throttle", domain, "slowed", body)

    async def _publish(self, kind: str, name: str, state: str, body: dict[str, Any]) -> None:
        payload = {"type": f"{kind}_{state}", "state": state, **body, "origin": self._origin,
                   "occurred_at": datetime.now(UTC).isoformat()}  # fmt: skip
        try:
            await self._js.publish(ops_subject(kind, name, state), json.dumps(payload).encode(),
                                   stream=OPS_STREAM)  # fmt: skip
        except TRANSIENT_ERRORS as exc:
            log.warning("ops event %s.%s.%s not published: %r", kind, name, state, exc)
