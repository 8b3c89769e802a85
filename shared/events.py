"""The event vocabulary of a message's life: one frozen model per fact, one union.

Events are appended to MAIL_EVT on `mail.evt.<message_id>.<type>` and are never
reused as API bodies or table rows. `v` is the schema version; `upcast` lifts an
older payload to the current shape before validation, so old streams replay.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.attachments import AttachmentRef
from shared.limits import Flag
from shared.mailbox import Mailbox
from shared.subjects import event_msg_id

_EVENT_NS = uuid.UUID("6f1c1d2e-3b0a-4f59-9a43-5d0b2f7e9c11")
_EVENT_NS_BYTES = _EVENT_NS.bytes


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = 1
    event_id: str
    message_id: str
    occurred_at: datetime = Field(default_factory=utcnow)
    # The event (or command) that caused this one, and the id shared by everything
    # that one send command set in motion.
    causation_id: str | None = None
    correlation_id: str | None = None


class Envelope(BaseModel):
    """Who a message is from and to; shared by `accepted` and `rendered`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sender: Mailbox
    to: tuple[Mailbox, ...]
    cc: tuple[Mailbox, ...] = ()
    bcc: tuple[Mailbox, ...] = ()
    reply_to: tuple[Mailbox, ...] = ()

    @property
    def recipients(self) -> tuple[Mailbox, ...]:
        return self.to + self.cc + self.bcc


class Track(BaseModel):
    """Per-message open and click tracking; None: the JETPOST_TRACK_* default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    opens: Flag | None = None
    clicks: Flag | None = None


class Accepted(EventBase):
    type: Literal["accepted"] = "accepted"
    envelope: Envelope
    template: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    tags: tuple[str, ...] = ()
    idempotency_key: str | None = None
    command_seq: int | None = None
    # A resend: the message whose content this one reuses. Without `rerender` the
    # renderer copies that message's rendered content instead of rendering again.
    resend_of: str | None = None
    rerender: bool = False
    track: Track | None = None
    transactional: bool = False
    attachments: tuple[AttachmentRef, ...] = ()
    # Released by the bulk lane (services/lanes): at the sender it yields to other mail.
    bulk: bool = False
    # Recipients left out because they are on the suppression set.
    suppressed: tuple[str, ...] = ()


class Rejected(EventBase):
    type: Literal["rejected"] = "rejected"
    reason: str
    command_subject: str
    command_seq: int | None = None
    # The command as received (truncated), so a refused command is never lost.
    raw: str = ""


class Suppressed(EventBase):
    """Nothing is sent: every `to` recipient is on the suppression set. v2 keeps the
    message's envelope (and template, tags), so a search by address finds it."""

    type: Literal["suppressed"] = "suppressed"
    v: int = 2
    addresses: tuple[str, ...]
    reason: str
    envelope: Envelope | None = None
    template: str | None = None
    tags: tuple[str, ...] = ()


def _suppressed_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 kept only the suppressed addresses: they were the message's recipients."""
    return {**payload, "v": 2}


class Scheduled(EventBase):
    """A send held until `send_at`: `accepted` is what the scheduler appends then.
    The event id is the schedule's revision (services/scheduler)."""

    type: Literal["scheduled"] = "scheduled"
    send_at: datetime
    accepted: Accepted


class Queued(EventBase):
    """A bulk message waiting in the bulk lane: `accepted` is appended when the
    renderer and sender have room (services/lanes), so transactional mail never
    waits behind a campaign."""

    type: Literal["queued"] = "queued"
    accepted: Accepted


class Rescheduled(EventBase):
    """The message's schedule moved to `send_at` (its event id is the new revision)."""

    type: Literal["rescheduled"] = "rescheduled"
    send_at: datetime


class Rendered(EventBase):
    type: Literal["rendered"] = "rendered"
    envelope: Envelope
    subject: str
    html: str | None = None
    text: str | None = None
    # Every header the mail carries besides From/To/Cc/Subject (Message-ID, Date,
    # Reply-To, List-Unsubscribe and the caller's own).
    headers: dict[str, str] = Field(default_factory=dict)
    template: str | None = None
    template_version: str | None = None
    tags: tuple[str, ...] = ()
    attachments: tuple[AttachmentRef, ...] = ()
    bulk: bool = False  # a campaign's mail: takes an SMTP connection after other mail


class RenderFailed(EventBase):
    type: Literal["render_failed"] = "render_failed"
    reason: str
    missing_variable: str | None = None
    template: str | None = None
    template_version: str | None = None


class Attempted(EventBase):
    type: Literal["attempted"] = "attempted"
    attempt: int
    provider: str


class Delivered(EventBase):
    type: Literal["delivered"] = "delivered"
    attempt: int
    provider: str
    host: str | None = None  # the SMTP host that answered (the MX host for mx://)
    smtp_code: int | None = None
    response: str = ""
    refused: dict[str, str] = Field(default_factory=dict)
    provider_event_id: str | None = None  # set when a provider's webhook reported it


class Deferred(EventBase):
    type: Literal["deferred"] = "deferred"
    attempt: int
    provider: str
    host: str | None = None  # the SMTP host that answered (the MX host for mx://)
    smtp_code: int | None = None
    response: str
    retry_in: float


class Bounced(EventBase):
    """v2 keeps the evidence (`action`, `evidence` beside status, code and response) so
    the suppression rules can judge every past bounce again with a changed classifier
    (shared.bounce_reasons); `kind` and `reason` are the verdict when it was recorded."""

    type: Literal["bounced"] = "bounced"
    v: int = 2
    kind: Literal["hard", "soft"]
    attempt: int | None = None
    provider: str | None = None
    host: str | None = None  # the SMTP host that answered (the MX host for mx://)
    smtp_code: int | None = None
    status: str | None = None  # enhanced status code, e.g. 5.1.1
    response: str = ""
    recipients: tuple[str, ...] = ()
    source: Literal["smtp", "dsn", "webhook"] = "smtp"
    provider_event_id: str | None = None  # the webhook provider's id for the report
    action: str | None = None  # the DSN's Action: failed or delayed (None: not said)
    reason: str | None = None  # user_unknown, mailbox_full ... (shared.bounce_reasons)
    evidence: str = ""  # the report's raw fields or text for this recipient (bounded)


def _bounced_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 had no action, reason or evidence: a v1 `hard` came from a failed delivery."""
    action = "failed" if payload.get("kind") == "hard" else None
    return {**payload, "v": 2, "action": payload.get("action", action)}


class Failed(EventBase):
    """Retries exhausted: the dead letter."""

    type: Literal["failed"] = "failed"
    attempt: int
    reason: str
    smtp_code: int | None = None


class Complained(EventBase):
    type: Literal["complained"] = "complained"
    recipient: str
    feedback_type: str = "abuse"
    source: Literal["arf", "webhook"] = "arf"
    provider_event_id: str | None = None  # the webhook provider's id for the report


class Cancelled(EventBase):
    type: Literal["cancelled"] = "cancelled"
    reason: str = ""


class Opened(EventBase):
    type: Literal["opened"] = "opened"
    user_agent: str = ""


class Clicked(EventBase):
    type: Literal["clicked"] = "clicked"
    url: str
    user_agent: str = ""


class Unsubscribed(EventBase):
    type: Literal["unsubscribed"] = "unsubscribed"
    recipient: str
    scope: str | None = None


class Resent(EventBase):
    type: Literal["resent"] = "resent"
    new_message_id: str


class SuppressionAdded(EventBase):
    """An address joins the suppression set. `message_id` is the address's aggregate
    id (subjects.suppression_aggregate); `cause_message_id` the mail that led to it."""

    type: Literal["suppression_added"] = "suppression_added"
    address: str
    scope: str = ""
    reason: str
    source: Literal["manual", "bounce", "complaint", "unsubscribe"] = "manual"
    cause_message_id: str | None = None
    expires_at: datetime | None = None
    # The command's MAIL_CMD sequence: manual changes to one address take effect in
    # command order, whatever order intake's concurrent workers appended them in.
    command_seq: int | None = None


class SuppressionRemoved(EventBase):
    type: Literal["suppression_removed"] = "suppression_removed"
    address: str
    scope: str = ""
    reason: str = "manual"
    # The command's MAIL_CMD sequence: manual changes to one address take effect in
    # command order, whatever order intake's concurrent workers appended them in.
    command_seq: int | None = None


class FeedbackUnmatched(EventBase):
    """A bounce or complaint report (or any other mail) that reached the feedback
    receiver but could not be tied to a message: kept, never dropped. `message_id` is
    the report's own aggregate id (`fb-<hash>`, services.feedback.logic)."""

    type: Literal["feedback_unmatched"] = "feedback_unmatched"
    kind: Literal["dsn", "arf", "webhook", "unknown"]
    reason: str
    raw_excerpt: str = ""  # the mail's first 4 KB
    mail_from: str = ""
    rcpt_tos: tuple[str, ...] = ()


class WebhookEndpointCreated(EventBase):
    """A customer's webhook endpoint (services/webhooks). `message_id` is the endpoint's
    id; `secret` is its signing secret encrypted with the webhook key, never plain."""

    type: Literal["webhook_endpoint_created"] = "webhook_endpoint_created"
    url: str
    events: tuple[str, ...]
    description: str = ""
    enabled: bool = True
    secret: str
    command_seq: int | None = None


class WebhookEndpointUpdated(EventBase):
    """Only the fields given change."""

    type: Literal["webhook_endpoint_updated"] = "webhook_endpoint_updated"
    url: str | None = None
    events: tuple[str, ...] | None = None
    description: str | None = None
    enabled: bool | None = None
    command_seq: int | None = None


class WebhookEndpointDeleted(EventBase):
    type: Literal["webhook_endpoint_deleted"] = "webhook_endpoint_deleted"
    command_seq: int | None = None


class WebhookSecretRotated(EventBase):
    """A new signing secret (encrypted); the ones before it sign beside it until
    `previous_valid_until`."""

    type: Literal["webhook_secret_rotated"] = "webhook_secret_rotated"
    secret: str
    previous_valid_until: datetime
    command_seq: int | None = None


class WebhookEndpointDisabled(EventBase):
    """Failing without a success for too long (JETPOST_WEBHOOK_DISABLE_AFTER)."""

    type: Literal["webhook_endpoint_disabled"] = "webhook_endpoint_disabled"
    reason: str
    failing_since: datetime


class WebhookReplayRequested(EventBase):
    """Send the endpoint's events again from `start_seq` (or `since`) up to `until_seq`."""

    type: Literal["webhook_replay_requested"] = "webhook_replay_requested"
    replay_id: str
    start_seq: int | None = None
    since: datetime | None = None
    until_seq: int
    command_seq: int | None = None


class WebhookReplayFinished(EventBase):
    type: Literal["webhook_replay_finished"] = "webhook_replay_finished"
    replay_id: str


class Forgotten(EventBase):
    """An address was erased (jetpost forget): the log's record that it happened, with
    no personal data. `message_id` is the erasure's own aggregate id (`forget-<uuid>`);
    `suppression_key` the hash the suppression set keeps when asked to."""

    type: Literal["forgotten"] = "forgotten"
    messages: int
    commands: int
    suppression_key: str | None = None


Event = Annotated[
    Accepted
    | Rejected
    | Suppressed
    | Scheduled
    | Queued
    | Rescheduled
    | Rendered
    | RenderFailed
    | Attempted
    | Delivered
    | Deferred
    | Bounced
    | Failed
    | Complained
    | Cancelled
    | Opened
    | Clicked
    | Unsubscribed
    | Resent
    | SuppressionAdded
    | SuppressionRemoved
    | FeedbackUnmatched
    | WebhookEndpointCreated
    | WebhookEndpointUpdated
    | WebhookEndpointDeleted
    | WebhookSecretRotated
    | WebhookEndpointDisabled
    | WebhookReplayRequested
    | WebhookReplayFinished
    | Forgotten,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
# (type, v) -> the step lifting that version one up; a new version of an event adds
# its step here, beside the models.
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("bounced", 1): _bounced_v1_to_v2,
    ("suppressed", 1): _suppressed_v1_to_v2,
}


def upcast(payload: dict[str, Any]) -> dict[str, Any]:
    """Lift an older schema version to the current one, step by step."""
    while (step := UPCASTERS.get((payload.get("type", ""), payload.get("v", 1)))) is not None:
        payload = step(payload)
    return payload


def field_of(event: Any, name: str) -> Any:
    """The event's field `name`, None for a type without it: read from the model's
    fields, as a missing attribute costs pydantic an AttributeError (per event, on the
    hot path); objects without a __dict__ (projections.decode's mirrors) by getattr."""
    fields = getattr(event, "__dict__", None)
    return fields.get(name) if fields is not None else getattr(event, name, None)


def parse_event(data: bytes | str) -> Event:
    """Current events parse in one pass (replay reads millions); an older version (or
    one the current model refuses) is lifted by its upcasters first."""
    try:
        event = EVENT_ADAPTER.validate_json(data)
    except ValidationError:
        try:
            payload = json.loads(data)
            if not isinstance(payload, dict):
                raise ValueError(f"an event is a JSON object, not {type(payload).__name__}")
            return EVENT_ADAPTER.validate_python(upcast(payload))
        except RecursionError:  # nested past what Python's parser takes: unreadable
            raise ValueError("the event nests too deeply to be read") from None
        except TypeError as exc:  # a list as `type` or `v`: no upcaster key can match it
            raise ValueError(f"the event cannot be read: {exc}") from None
    if (event.type, event.v) in UPCASTERS:
        return EVENT_ADAPTER.validate_python(upcast(json.loads(data)))
    return event


def event_id_for(message_id: str, event_type: str, n: int = 1) -> str:
    """The event id is derived from the append's dedup id, so re-creating the same
    event after a crash yields the same id."""
    return uuid5_str(_EVENT_NS_BYTES, event_msg_id(message_id, event_type, n))


def uuid5_str(namespace: bytes, name: str) -> str:
    """`str(uuid.uuid5(UUID(bytes=namespace), name))`, the same string, without the
    UUID object and its int arithmetic (one per event made)."""
    digest = bytearray(hashlib.sha1(namespace + name.encode(), usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
