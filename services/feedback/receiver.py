"""The feedback receiver: an SMTP server for bounce and complaint reports.

Mail to any address at the bounce domain (VERP return paths) or the mail domain
(the plain return path, and abuse@ / fbl@ for feedback loops) is read into events
(services.feedback.logic) and appended to MAIL_EVT before the 250: a report is never
acknowledged before it is durably stored. While NATS is away the reply is 451, so the
sending MTA keeps the report and tries again. Like the capture sink, aiosmtpd's
protocol runs on the caller's event loop (port 0 works in tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from services.feedback.logic import Analysis, Inbound, Known, analyse, decide
from shared.consumers import TRANSIENT_ERRORS
from shared.eventlog import append, last_event
from shared.events import Accepted, Event, Rendered
from shared.nats_connect import connect
from shared.nats_setup import apply_definitions, load_definitions
from shared.ports import binding
from shared.settings import Settings
from shared.smtp_listener import SmtpListener
from shared.subjects import EVT_STREAM, event_subject

log = logging.getLogger("jetpost.feedback")

DATA_SIZE_LIMIT = 10 * 1024 * 1024  # reports carry the returned message; keep it bounded
TRY_LATER = "451 4.3.0 cannot store the report now, try again later"


class FeedbackReceiver(SmtpListener):
    hostname = "jetpost-feedback"

    def __init__(
        self,
        js: JetStreamContext,
        *,
        bounce_domain: str,
        mail_domain: str,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.js = js
        self.bounce_domain = bounce_domain.lower()
        self.mail_domain = mail_domain.lower()
        super().__init__(host, port)

    def smtp_options(self) -> dict[str, Any]:
        return {"data_size_limit": DATA_SIZE_LIMIT}

    # aiosmtpd handler hooks.
    async def handle_exception(self, error: Exception) -> str:
        """A bug must not answer 5xx (the sender would drop the report) nor show our
        internals to a peer: log it and ask the MTA to try again later."""
        log.error("feedback receiver error", exc_info=error)
        return TRY_LATER

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain not in (self.bounce_domain, self.mail_domain):
            return "550 5.7.1 relaying denied: this server only takes feedback"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = Inbound(str(envelope.mail_from or ""), tuple(envelope.rcpt_tos),
                       bytes(envelope.original_content or b""))  # fmt: skip
        analysis = self._analyse(mail)
        try:
            known = await self._known(analysis)
            events = decide(analysis, mail, known)
            for event, n in events:
                fresh = await self._store(event, n)
                log.info("feedback: %s for %s%s", event.type, event.message_id,
                         "" if fresh else " (already recorded)")  # fmt: skip
        except TRANSIENT_ERRORS as exc:
            log.warning("report from %r not stored, asked to retry: %r", mail.mail_from, exc)
            return TRY_LATER
        if not events:
            log.info("feedback: nothing to record (a DSN reporting deliveries only)")
        return "250 OK"

    def _analyse(self, mail: Inbound) -> Analysis:
        try:
            return analyse(mail, bounce_domain=self.bounce_domain, mail_domain=self.mail_domain)
        except Exception as exc:  # mail from anywhere: never let it crash us
            return Analysis("unknown", problem=f"unparseable: {exc!r}")

    async def _known(self, analysis: Analysis) -> Known | None:
        """The matched message as the log knows it; None if the log does not."""
        if analysis.match is None or analysis.problem is not None:
            return None
        mid = analysis.match.message_id
        rendered = await last_event(self.js, mid, "rendered")
        if isinstance(rendered, Rendered):
            recipients = tuple(m.email for m in rendered.envelope.recipients)
            return Known(mid, rendered.correlation_id, recipients)
        accepted = await last_event(self.js, mid, "accepted")
        if isinstance(accepted, Accepted):
            recipients = tuple(m.email for m in accepted.envelope.recipients)
            return Known(mid, accepted.correlation_id, recipients)
        return None

    async def _store(self, event: Event, n: int) -> bool:
        """Append unless the log already has this event (a report delivered again after
        the stream's duplicate window). True if it was appended now."""
        if await self._recorded(event):
            return False
        ack = await append(self.js, event, n)
        return not ack.duplicate

    async def _recorded(self, event: Event) -> bool:
        subject = event_subject(event.message_id, event.type)
        seq = 1
        while True:
            try:
                stored = await self.js.get_msg(
                    EVT_STREAM, seq=seq, subject=subject, next=True, direct=True
                )
            except NotFoundError:
                return False
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                if json.loads(stored.data or b"{}").get("event_id") == event.event_id:
                    return True
            if stored.seq is None:  # a server that does not say where it is: stop
                return False
            seq = stored.seq + 1


async def run_feedback(
    settings: Settings, stop: asyncio.Event, started: asyncio.Event | None = None
) -> None:
    """`jetpost run feedback`: the receiver on JETPOST_BOUNCE_HOST:JETPOST_BOUNCE_PORT
    until `stop` is set."""
    nc = await connect(settings, name="jetpost-feedback")
    try:
        js = nc.jetstream()
        await apply_definitions(js, load_definitions(settings))
        receiver = FeedbackReceiver(
            js,
            bounce_domain=settings.feedback_domain,
            mail_domain=settings.mail_domain,
            host=settings.bounce_host,
            port=settings.bounce_port,
        )
        with binding(settings.bounce_host, settings.bounce_port, "JETPOST_BOUNCE_PORT"):
            port = await receiver.start()
        log.info("feedback receiver on smtp://%s:%s for @%s", settings.bounce_host, port,
                 settings.feedback_domain)  # fmt: skip
        if started is not None:
            started.set()
        try:
            await stop.wait()
        finally:
            await receiver.stop()
    finally:
        await nc.close()
