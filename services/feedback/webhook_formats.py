"""Provider webhooks read into normalized feedback items, and items into events. Pure.

Two formats: `generic` (jetpost's own JSON, for any provider a small adapter can
translate) and `ses` (an Amazon SES notification, the Message of an SNS
Notification, in either SES's notification or event-publishing shape). Every item
carries the provider's id for the event it reports; its events' dedup ids are
derived from that id (`dedup_n`), so the same report delivered again yields the
same events.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.feedback.dsn import parse_status, smtp_code
from services.feedback.matching import from_header, from_message_id
from shared.bounce_reasons import classify
from shared.events import (
    Bounced,
    Complained,
    Delivered,
    Event,
    FeedbackUnmatched,
    event_id_for,
)
from shared.subjects import MESSAGE_ID_RE

Kind = Literal["bounce", "complaint", "delivery"]
BounceKind = Literal["hard", "soft"]
EXCERPT_CHARS = 4096
UNMATCHED_PREFIX = "fb-"  # as the DSN receiver's unmatched reports
# One n for every provider-reported delivery of a message: two reports of it racing
# each other are one append (the stream's duplicate window); later, the log says so.
DELIVERY_N = 1 << 48


class FormatError(ValueError):
    """The body is not what its format says; the message is the 400's detail."""


@dataclass(frozen=True)
class FeedbackItem:
    provider: str
    provider_event_id: str
    kind: Kind
    recipients: tuple[str, ...] = ()
    jetpost_id: str | None = None  # the message id itself, when the provider has it
    smtp_message_ids: tuple[str, ...] = ()  # Message-ID values, `<id@our domain>`
    bounce_kind: BounceKind | None = None
    status: str | None = None  # enhanced status code, 5.1.1
    smtp_code: int | None = None
    diagnostic: str = ""
    feedback_type: str = "abuse"
    occurred_at: datetime | None = None
    raw: str = ""  # the provider's event, kept when it matches no message

    @property
    def dedup_key(self) -> str:
        """Names this provider event among all webhooks (the `mail_webhook_seen` key)."""
        return hashlib.sha256(f"{self.provider}\0{self.provider_event_id}".encode()).hexdigest()


@dataclass(frozen=True)
class Parsed:
    items: tuple[FeedbackItem, ...] = ()
    ignored: tuple[str, ...] = ()  # what the payload held that is not recorded, and why


def _excerpt(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)[:EXCERPT_CHARS]


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _diagnostic_code(diagnostic: str) -> int | None:
    """`smtp; 550 5.1.1 ...` (a DSN's Diagnostic-Code with its type) -> 550."""
    kind, sep, rest = diagnostic.partition(";")
    return smtp_code(rest if sep and kind.strip().isalpha() else diagnostic)


# The generic format -----------------------------------------------------------------


class GenericEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=256)
    type: Kind
    message_id: str | None = Field(default=None, pattern=MESSAGE_ID_RE.pattern)
    smtp_message_id: str | None = Field(default=None, min_length=3, max_length=998)
    recipient: str | None = Field(default=None, pattern=r"^[^\s@]+@[^\s@]+$", max_length=320)
    bounce_type: BounceKind | None = None
    status: str | None = Field(default=None, pattern=r"^[245]\.\d{1,3}\.\d{1,3}$")
    smtp_code: int | None = Field(default=None, ge=200, le=599)
    diagnostic: str = Field(default="", max_length=4000)
    feedback_type: str = Field(default="abuse", min_length=1, max_length=64)
    timestamp: datetime | None = None

    @model_validator(mode="after")
    def _complete(self) -> GenericEvent:
        if self.message_id is None and self.smtp_message_id is None:
            raise ValueError("message_id or smtp_message_id is required")
        if self.type != "delivery" and self.recipient is None:
            raise ValueError(f"a {self.type} needs its recipient")
        if self.type == "bounce" and self.bounce_type is None and self.status is None:
            raise ValueError("a bounce needs bounce_type (hard or soft) or status")
        return self

    def item(self) -> FeedbackItem:
        kind = self.bounce_type
        if self.type == "bounce" and kind is None:
            kind = "soft" if (self.status or "").startswith("4") else "hard"
        at = self.timestamp
        return FeedbackItem(
            provider="generic", provider_event_id=self.id, kind=self.type,
            recipients=(self.recipient,) if self.recipient else (),
            jetpost_id=self.message_id,
            smtp_message_ids=(self.smtp_message_id,) if self.smtp_message_id else (),
            bounce_kind=kind if self.type == "bounce" else None, status=self.status,
            smtp_code=self.smtp_code or _diagnostic_code(self.diagnostic),
            diagnostic=self.diagnostic, feedback_type=self.feedback_type,
            occurred_at=at.replace(tzinfo=UTC) if at and at.tzinfo is None else at,
            raw=_excerpt(self.model_dump(mode="json", exclude_none=True)),
        )  # fmt: skip


class GenericBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    events: list[GenericEvent] = Field(min_length=1, max_length=1000)


def _errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:10]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def parse_generic(body: bytes) -> Parsed:
    """`{"events": [...]}`: all or nothing, a bad entry refuses the whole body."""
    try:
        parsed = GenericBody.model_validate_json(body)
    except ValidationError as exc:
        raise FormatError(_errors(exc)) from None
    return Parsed(tuple(event.item() for event in parsed.events))


# Amazon SES -------------------------------------------------------------------------

SES_BOUNCE_KINDS: dict[str, BounceKind] = {
    "Permanent": "hard",
    "Transient": "soft",
    "Undetermined": "soft",  # SES could not tell: not reason enough to suppress
}


def _object(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise FormatError(f"SES {name}: expected an object")
    return value


def _refs(mail: dict[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    """The X-Jetpost-Message-Id and the Message-ID values the original mail carried."""
    jetpost_id, message_ids = None, []
    for header in mail.get("headers") or ():
        if not isinstance(header, dict) or not isinstance(header.get("value"), str):
            continue
        name = str(header.get("name", "")).lower()
        if name == "x-jetpost-message-id" and jetpost_id is None:
            jetpost_id = header["value"].strip()
        elif name == "message-id":
            message_ids.append(header["value"])
    common = mail.get("commonHeaders")
    if isinstance(common, dict) and isinstance(common.get("messageId"), str):
        message_ids.append(common["messageId"])
    return jetpost_id, tuple(message_ids)


def _addresses(entries: Any, what: str) -> list[dict[str, Any]]:
    found = [e for e in entries or () if isinstance(e, dict) and e.get("emailAddress")]
    if not found:
        raise FormatError(f"SES {what}: no recipients")
    return found


def parse_ses(message: str, *, notification_id: str) -> Parsed:
    """An SES notification (`notificationType`) or event (`eventType`). Bounces and
    complaints give one item per recipient; deliveries one item; other types none."""
    try:
        data = json.loads(message)
    except json.JSONDecodeError as exc:
        raise FormatError(f"the SNS Message is not SES JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FormatError("the SNS Message is not an SES notification")
    kind = data.get("notificationType") or data.get("eventType")
    if kind == "AmazonSnsSubscriptionSucceeded":
        return Parsed(ignored=("SES confirms that the topic is subscribed",))
    if kind not in ("Bounce", "Complaint", "Delivery"):
        return Parsed(ignored=(f"SES {kind!r} notifications are not recorded",))
    mail = _object(data, "mail")
    jetpost_id, message_ids = _refs(mail)
    base: dict[str, Any] = {"provider": "ses", "jetpost_id": jetpost_id,
                            "smtp_message_ids": message_ids}  # fmt: skip
    if kind == "Bounce":
        bounce = _object(data, "bounce")
        bounce_kind = SES_BOUNCE_KINDS.get(str(bounce.get("bounceType")), "soft")
        feedback_id = str(bounce.get("feedbackId") or notification_id)
        items = []
        for rcpt in _addresses(bounce.get("bouncedRecipients"), "bounce"):
            diagnostic = str(rcpt.get("diagnosticCode") or "")
            address = str(rcpt["emailAddress"])
            items.append(FeedbackItem(
                **base, provider_event_id=f"{feedback_id}/{address.lower()}", kind="bounce",
                recipients=(address,), bounce_kind=bounce_kind,
                status=parse_status(str(rcpt.get("status") or "")) or parse_status(diagnostic),
                smtp_code=_diagnostic_code(diagnostic), diagnostic=diagnostic,
                occurred_at=_timestamp(bounce.get("timestamp")), raw=_excerpt(data),
            ))  # fmt: skip
        return Parsed(tuple(items))
    if kind == "Complaint":
        complaint = _object(data, "complaint")
        feedback_id = str(complaint.get("feedbackId") or notification_id)
        feedback_type = str(complaint.get("complaintFeedbackType") or "abuse")
        items = []
        for rcpt in _addresses(complaint.get("complainedRecipients"), "complaint"):
            address = str(rcpt["emailAddress"])
            items.append(FeedbackItem(
                **base, provider_event_id=f"{feedback_id}/{address.lower()}", kind="complaint",
                recipients=(address,), feedback_type=feedback_type,
                occurred_at=_timestamp(complaint.get("timestamp")), raw=_excerpt(data),
            ))  # fmt: skip
        return Parsed(tuple(items))
    delivery = _object(data, "delivery")
    recipients = tuple(str(r) for r in delivery.get("recipients") or () if r)
    response = str(delivery.get("smtpResponse") or "")
    ses_id = str(mail.get("messageId") or notification_id)
    item = FeedbackItem(
        **base, provider_event_id=f"delivery/{ses_id}/{','.join(sorted(recipients))}",
        kind="delivery", recipients=recipients, smtp_code=smtp_code(response),
        diagnostic=response, occurred_at=_timestamp(delivery.get("timestamp")),
        raw=_excerpt(data),
    )  # fmt: skip
    return Parsed((item,))


# Items into events ------------------------------------------------------------------


def resolve(item: FeedbackItem, mail_domain: str) -> str | None:
    """The jetpost message the item is about: its X-Jetpost-Message-Id / message_id,
    else a Message-ID of ours (`<id@mail domain>`); None when neither is there."""
    if (found := from_header(item.jetpost_id)) is not None:
        return found
    for value in item.smtp_message_ids:
        if (found := from_message_id(value, (mail_domain,))) is not None:
            return found
    return None


def dedup_n(item: FeedbackItem) -> int:
    """The append's n: from the provider's event id, above 2**48, so it never meets
    the attempt numbers the sender uses."""
    return DELIVERY_N + 1 + int(item.dedup_key[:12], 16)


def _at(item: FeedbackItem, now: datetime) -> datetime:
    """When it happened, as the provider says; never later than now."""
    return min(item.occurred_at, now) if item.occurred_at is not None else now


def event_for(
    item: FeedbackItem, message_id: str, correlation_id: str | None, now: datetime
) -> tuple[Bounced | Complained | Delivered, int]:
    """The event an item stands for, on a message known to the log, with its n."""
    common: dict[str, Any] = {"message_id": message_id, "correlation_id": correlation_id,
                              "occurred_at": _at(item, now),
                              "provider_event_id": item.provider_event_id}  # fmt: skip
    if item.kind == "bounce":
        n = dedup_n(item)
        kind = item.bounce_kind or "hard"
        action = "failed" if kind == "hard" else None
        verdict = classify(item.status, item.smtp_code, item.diagnostic, action)
        return Bounced(
            event_id=event_id_for(message_id, "bounced", n), **common,
            kind=kind, provider=item.provider, smtp_code=item.smtp_code, status=item.status,
            response=item.diagnostic, recipients=item.recipients, source="webhook",
            action=action, reason=verdict.reason,
        ), n  # fmt: skip
    if item.kind == "complaint":
        n = dedup_n(item)
        return Complained(
            event_id=event_id_for(message_id, "complained", n), **common,
            recipient=item.recipients[0] if item.recipients else "",
            feedback_type=item.feedback_type, source="webhook",
        ), n  # fmt: skip
    return Delivered(
        event_id=event_id_for(message_id, "delivered", DELIVERY_N), **common,
        attempt=0, provider=item.provider, smtp_code=item.smtp_code, response=item.diagnostic,
    ), DELIVERY_N  # fmt: skip


def unmatched(item: FeedbackItem, reason: str, now: datetime) -> tuple[Event, int]:
    """A report no message can be found for: kept under its own aggregate id."""
    aggregate = UNMATCHED_PREFIX + item.dedup_key[:32]
    event = FeedbackUnmatched(
        event_id=event_id_for(aggregate, "feedback_unmatched"),
        message_id=aggregate,
        occurred_at=now,
        kind="webhook",
        reason=f"{item.provider} {item.kind} {item.provider_event_id}: {reason}",
        raw_excerpt=item.raw,
        rcpt_tos=(),
    )
    return event, 1
