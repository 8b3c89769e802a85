"""Request and response bodies of /v1/webhook-endpoints (services/api/webhook_endpoints)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from services.api.schemas import Body
from services.webhooks.catalog import WEBHOOK_TYPES

EVENTS_HELP = f"webhook types; default every one: {', '.join(WEBHOOK_TYPES)}"


class EndpointCreate(Body):
    url: str = Field(max_length=2048, description="https URL the webhooks are POSTed to")
    events: list[str] | None = Field(default=None, description=EVENTS_HELP)
    description: str = Field(default="", max_length=500)
    enabled: bool = True


class EndpointPatch(Body):
    url: str | None = Field(default=None, max_length=2048)
    events: list[str] | None = None
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class Endpoint(Body):
    id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class EndpointCreated(Endpoint):
    secret: str = Field(description="whsec_...: shown this once; verify signatures with it")


class EndpointPage(Body):
    items: list[Endpoint]
    next_cursor: str | None = None


class SecretRotated(Body):
    id: str
    secret: str = Field(description="the new secret, shown this once")
    previous_valid_until: datetime = Field(description="the old secret signs beside it until")


class ReplayRequest(Body):
    since: datetime | None = Field(default=None, description="events stored at or after")
    seq: int | None = Field(default=None, ge=1, description="events from this MAIL_EVT sequence")


class ReplayAccepted(Body):
    replay_id: str
    until_seq: int = Field(description="the log's last sequence when asked: the replay's end")


class Delivery(Body):
    id: int
    webhook_id: str
    type: str
    message_id: str | None
    seq: int | None
    attempt: int
    outcome: str = Field(description="delivered, retrying or failed")
    http_status: int | None
    error: str | None
    latency_ms: float
    response: str = Field(description="the first 1 KB of the answer")
    replay_id: str | None
    attempted_at: datetime
    next_attempt_at: datetime | None


class DeliveryPage(Body):
    items: list[Delivery]
    next_cursor: str | None = None


class TestResult(Body):
    ok: bool
    http_status: int | None
    latency_ms: float
    response: str
    error: str | None
