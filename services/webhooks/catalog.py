"""What a webhook says: the customer-facing event types, and one body per event.

A body is `{"type": "message.<event type>", "timestamp", "data": {"message_id", "to",
"tags", "template", ...the event's own fields}}`. The schemas documented for each
type (OpenAPI `webhooks`, AsyncAPI) are derived from the same event models, so
documentation and bodies cannot drift apart. Pure: no I/O.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from shared import events as ev
from shared.events import Accepted, Event

PREFIX = "message."
TEST_TYPE = "webhook.test"
# The events a customer's application can subscribe to, in the order of a mail's life.
EVENT_MODELS: dict[str, type[BaseModel]] = {
    "accepted": ev.Accepted, "rejected": ev.Rejected, "suppressed": ev.Suppressed,
    "render_failed": ev.RenderFailed, "delivered": ev.Delivered, "deferred": ev.Deferred,
    "bounced": ev.Bounced, "failed": ev.Failed, "cancelled": ev.Cancelled,
    "complained": ev.Complained, "opened": ev.Opened, "clicked": ev.Clicked,
    "unsubscribed": ev.Unsubscribed,
}  # fmt: skip
WEBHOOK_TYPES: tuple[str, ...] = tuple(PREFIX + t for t in EVENT_MODELS)
DESCRIPTIONS = {
    "accepted": "the send was accepted (recipients suppressed are named in `suppressed`)",
    "rejected": "the send was refused: `reason` says why",
    "suppressed": "nothing was sent: every recipient is on the suppression list",
    "render_failed": "the template could not be rendered (`missing_variable`)",
    "delivered": "the receiving server took the mail (`smtp_code`, `response`)",
    "deferred": "a temporary failure: it is tried again in `retry_in` seconds",
    "bounced": "a hard or soft bounce (`kind`, `status`, `smtp_code`)",
    "failed": "retries exhausted: the mail was not delivered",
    "cancelled": "the send was cancelled before it went out",
    "complained": "the recipient reported the mail as spam",
    "opened": "the tracking pixel was loaded",
    "clicked": "a tracked link was followed (`url`)",
    "unsubscribed": "the recipient unsubscribed (`scope`: the list)",
}
# Bookkeeping and bulky or private content (the mail itself, its variables, a raw
# command) stay out of bodies: `to`, `tags` and `template` say which mail it was.
EXCLUDED = set({
    "v", "event_id", "message_id", "occurred_at", "causation_id", "correlation_id", "type",
    "envelope", "vars", "html", "text", "headers", "raw", "command_seq", "idempotency_key",
    "track", "rerender",
})  # fmt: skip


def event_type(webhook_type: str) -> str:
    """`message.delivered` -> `delivered` (the log's event type)."""
    return webhook_type.removeprefix(PREFIX)


def unknown_types(types: tuple[str, ...] | list[str]) -> list[str]:
    return [t for t in types if t not in WEBHOOK_TYPES]


class Mail(BaseModel):
    """Which mail an event is about, from its `accepted` event."""

    model_config = ConfigDict(frozen=True)

    to: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    template: str | None = None

    @classmethod
    def of(cls, accepted: Event | None) -> Mail:
        if not isinstance(accepted, Accepted):
            return cls()
        to = tuple(m.email for m in accepted.envelope.to)
        return cls(to=to, tags=accepted.tags, template=accepted.template)


def body(event: Event, mail: Mail) -> bytes:
    data: dict[str, Any] = {
        "message_id": event.message_id, "to": list(mail.to), "tags": list(mail.tags),
        "template": mail.template,
        **event.model_dump(mode="json", exclude=EXCLUDED),
    }  # fmt: skip
    return dumps(PREFIX + event.type, event.occurred_at, data)


def test_body(endpoint_id: str, at: datetime) -> bytes:
    data = {"endpoint_id": endpoint_id, "message": "a test from jetpost"}
    return dumps(TEST_TYPE, at, data)


def dumps(webhook_type: str, at: datetime, data: dict[str, Any]) -> bytes:
    payload = {"type": webhook_type, "timestamp": at.isoformat(), "data": data}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookData(BaseModel):
    message_id: str
    to: list[str] = Field(description="the mail's To addresses")
    tags: list[str]
    template: str | None


def payload_models() -> dict[str, type[BaseModel]]:
    """One body model per webhook type, for the documentation."""
    models: dict[str, type[BaseModel]] = {}
    for name, event_model in EVENT_MODELS.items():
        fields: dict[str, Any] = {
            field: (info.annotation, info)
            for field, info in event_model.model_fields.items() if field not in EXCLUDED
        }  # fmt: skip
        title = "".join(part.title() for part in name.split("_"))
        data = create_model(f"{title}WebhookData", __base__=WebhookData, **fields)
        models[PREFIX + name] = create_model(
            f"{title}Webhook",
            type=(str, Field(json_schema_extra={"const": PREFIX + name})),
            timestamp=(datetime, Field(description="when the event happened")),
            data=(data, ...),
            __doc__=f"`{PREFIX}{name}`: {DESCRIPTIONS[name]}",
        )
    return models
