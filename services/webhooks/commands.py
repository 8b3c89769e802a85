"""Intake's part for webhook endpoint commands (`mail.cmd.webhook_*`): each becomes one
event on the endpoint's own aggregate, or `rejected` with a reason. Changes to an
endpoint that does not exist (or no longer) are rejected, checked against the log."""

from __future__ import annotations

from datetime import timedelta

from nats.js import JetStreamContext
from pydantic import BaseModel, ValidationError

from services.intake.logic import CommandContext, Decision, describe, load_object, reject
from services.webhooks.catalog import unknown_types
from services.webhooks.ssrf import Refused, check_url
from shared.commands import (
    WebhookCreateCommand,
    WebhookEndpointRef,
    WebhookReplayCommand,
    WebhookRotateCommand,
    WebhookUpdateCommand,
)
from shared.eventlog import has_event
from shared.events import (
    Event,
    WebhookEndpointCreated,
    WebhookEndpointDeleted,
    WebhookEndpointUpdated,
    WebhookReplayRequested,
    WebhookSecretRotated,
    event_id_for,
    utcnow,
)
from shared.subjects import (
    CMD_WEBHOOK_CREATE,
    CMD_WEBHOOK_DELETE,
    CMD_WEBHOOK_REPLAY,
    CMD_WEBHOOK_ROTATE,
    CMD_WEBHOOK_UPDATE,
)

COMMANDS: dict[str, type[WebhookEndpointRef]] = {
    CMD_WEBHOOK_CREATE: WebhookCreateCommand, CMD_WEBHOOK_UPDATE: WebhookUpdateCommand,
    CMD_WEBHOOK_DELETE: WebhookEndpointRef, CMD_WEBHOOK_ROTATE: WebhookRotateCommand,
    CMD_WEBHOOK_REPLAY: WebhookReplayCommand,
}  # fmt: skip
ROTATION_GRACE = timedelta(hours=24)  # the old secret signs beside the new one this long


def problem(command: BaseModel) -> str | None:
    """What is wrong with a well-formed command, if anything (pure). The URL's shape only:
    where it resolves is checked by the API and again at every connection."""
    url = getattr(command, "url", None)
    if url is not None:
        try:
            check_url(url, allow_private=True)
        except Refused as exc:
            return f"url: {exc}"
    types = getattr(command, "events", None)
    if types is not None:
        if not types:
            return "events: at least one event type"
        if unknown := unknown_types(types):
            return f"events: unknown type(s) {', '.join(unknown)}"
    return None


def event_for(command: WebhookEndpointRef, ctx: CommandContext) -> tuple[Event, int]:
    """The event a valid command becomes, and its append's dedup counter."""
    eid, n = command.endpoint_id, ctx.seq or 1
    base = {"message_id": eid, "correlation_id": eid}
    if isinstance(command, WebhookCreateCommand):
        return WebhookEndpointCreated(
            event_id=event_id_for(eid, "webhook_endpoint_created"), url=command.url,
            events=command.events, description=command.description, enabled=command.enabled,
            secret=command.secret, command_seq=ctx.seq, **base,
        ), 1  # fmt: skip
    if isinstance(command, WebhookUpdateCommand):
        return WebhookEndpointUpdated(
            event_id=event_id_for(eid, "webhook_endpoint_updated", n), url=command.url,
            events=command.events, description=command.description, enabled=command.enabled,
            command_seq=ctx.seq, **base,
        ), n  # fmt: skip
    if isinstance(command, WebhookRotateCommand):
        return WebhookSecretRotated(
            event_id=event_id_for(eid, "webhook_secret_rotated", n), secret=command.secret,
            previous_valid_until=(ctx.stored_at or utcnow()) + ROTATION_GRACE,
            command_seq=ctx.seq, **base,
        ), n  # fmt: skip
    if isinstance(command, WebhookReplayCommand):
        return WebhookReplayRequested(
            event_id=event_id_for(eid, "webhook_replay_requested", n),
            replay_id=command.replay_id, start_seq=command.seq, since=command.since,
            until_seq=command.until_seq, command_seq=ctx.seq, **base,
        ), n  # fmt: skip
    return WebhookEndpointDeleted(
        event_id=event_id_for(eid, "webhook_endpoint_deleted", n), command_seq=ctx.seq, **base
    ), n


async def decide_webhook(
    js: JetStreamContext, subject: str, raw: bytes, ctx: CommandContext
) -> list[Decision]:
    payload = load_object(raw)
    if isinstance(payload, str):
        return [reject(ctx, raw, payload)]
    try:
        command = COMMANDS[subject].model_validate(payload)
    except ValidationError as exc:
        return [reject(ctx, raw, describe(exc))]
    eid = command.endpoint_id
    if (reason := problem(command)) is not None:
        return [reject(ctx, raw, reason, eid)]
    if not isinstance(command, WebhookCreateCommand):
        exists = await has_event(js, eid, "webhook_endpoint_created")
        if not exists or await has_event(js, eid, "webhook_endpoint_deleted"):
            return [reject(ctx, raw, f"endpoint_id: no webhook endpoint {eid!r}", eid)]
    event, n = event_for(command, ctx)
    return [Decision(event, n=n)]
