"""Composition of the intake service: its subscriber and the KV bucket it needs."""

from __future__ import annotations

from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from services.component import Env, Service, register_service
from services.intake.handlers import Intake
from shared.attachments import BUCKET as ATTACHMENTS_BUCKET
from shared.consumers import subscribe
from shared.mailbox import parse_mailbox
from shared.subjects import IDEMPOTENCY_BUCKET, SUPPRESSION_BUCKET


def register(broker: NatsBroker, env: Env) -> Service:
    async def build(js: JetStreamContext) -> Intake:
        return Intake(
            js=js,
            idempotency=await js.key_value(IDEMPOTENCY_BUCKET),
            default_sender=parse_mailbox(env.settings.sender_from, operator=True),
            templates=env.catalog.names(),
            suppressions=await js.key_value(SUPPRESSION_BUCKET),
            max_schedule=env.settings.max_schedule,
            max_content=env.settings.max_content_bytes,
            objects=await js.object_store(ATTACHMENTS_BUCKET),
            blocked=env.settings.blocked,
            max_attachments=env.settings.max_attachments,
            max_attachment_bytes=env.settings.max_attachment_bytes,
        )

    service = register_service(broker, env, "intake", build)
    # The same handler on a second consumer: batches (bulk) apart from everything else.
    subscribe(broker, env.definitions, "intake_bulk", service.handle,
              batch=env.settings.fetch_batch, give_up=service.give_up)  # fmt: skip
    return service
