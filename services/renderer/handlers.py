"""renderer's subscriber: `accepted` in, `rendered` or `render_failed` appended, then ack."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from faststream.nats import NatsMessage
from nats.js import JetStreamContext
from pydantic import ValidationError

from services.renderer.catalog import TemplateCatalog
from services.renderer.render import render, reuse
from services.renderer.tracking import Tracking
from shared.consumers import TRANSIENT_ERRORS, retry_delay
from shared.eventlog import append, first_of, last_event
from shared.events import Accepted, Rendered, RenderFailed, event_id_for, parse_event

log = logging.getLogger("jetpost.renderer")


def unreadable(
    message_id: str, exc: BaseException, what: str = "unreadable accepted event"
) -> RenderFailed:
    """An `accepted` event this version cannot read (or render) still ends its message."""
    return RenderFailed(
        event_id=event_id_for(message_id, "render_failed"),
        message_id=message_id,
        correlation_id=message_id,
        reason=f"{what}: {type(exc).__name__}: {str(exc)[:300]}",
    )


@dataclass
class Renderer:
    js: JetStreamContext
    catalog: TemplateCatalog
    mail_domain: str
    tracking: Tracking | None = None

    async def handle(self, msg: NatsMessage) -> None:
        raw = msg.raw_message
        meta = raw.metadata
        message_id = raw.subject.split(".")[2]
        try:
            if meta.num_delivered > 1 and await first_of(
                self.js, message_id, ("rendered", "render_failed")
            ):
                await msg.ack()
                return
            try:
                accepted = parse_event(raw.data)
                if not isinstance(accepted, Accepted):
                    raise TypeError(f"expected an accepted event, got {accepted.type}")
                result = await self.render(accepted)
            except (ValidationError, ValueError, TypeError) as exc:
                result = unreadable(message_id, exc)
            await append(self.js, result)
            if isinstance(result, RenderFailed):
                log.warning("message %s not rendered: %s", message_id, result.reason)
        except TRANSIENT_ERRORS as exc:
            log.warning("message %s not rendered, will retry: %r", message_id, exc)
            await msg.nack(delay=retry_delay(meta.num_delivered))
            return
        await msg.ack()

    async def render(self, accepted: Accepted) -> Rendered | RenderFailed:
        """Render, or for a resend without `rerender`, reuse what the original sent."""
        if accepted.resend_of and not accepted.rerender:
            original = await last_event(self.js, accepted.resend_of, "rendered")
            if isinstance(original, Rendered):
                return reuse(
                    accepted, original, mail_domain=self.mail_domain, tracking=self.tracking
                )
        return render(accepted, self.catalog, mail_domain=self.mail_domain, tracking=self.tracking)

    async def give_up(self, msg: NatsMessage, exc: BaseException) -> None:
        """An accepted message that keeps failing to render ends as render_failed."""
        message_id = msg.raw_message.subject.split(".")[2]
        await append(self.js, unreadable(message_id, exc, "rendering failed"))
