"""Request and response bodies of the API (its own models: events are never reused
as bodies, and rows are mapped here rather than exposed as they are stored)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import msgspec
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.fold import MessageState
from shared.limits import Flag


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MessageAccepted(Body):
    id: str = Field(description="the message id; its events are on mail.evt.<id>.*")


def accepted_json(message_id: str) -> bytes:
    """`MessageAccepted(id=message_id)` as Litestar encodes it."""
    return _encode({"id": message_id})


class BatchAccepted(Body):
    batch_id: str
    ids: list[str] = Field(description="one message id per entry, in entry order")


class ResendRequest(Body):
    rerender: Flag = Field(default=False, description="render the template again")

    @field_validator("rerender", mode="before")
    @classmethod
    def _a_json_boolean(cls, value: object) -> object:
        # before-validation: Litestar validates bodies in lax mode, where "yes" is True
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value


class PreviewRequest(Body):
    vars: dict[str, Any] = Field(default_factory=dict)


class Message(Body):
    id: str
    status: str
    to: list[str]
    cc: list[str] = []
    bcc: list[str] = []
    sender: str | None = None
    subject: str | None = None
    template: str | None = None
    template_version: str | None = None
    tags: list[str] = []
    attempts: int = 0
    last_smtp_code: int | None = None
    last_error: str | None = None
    created_at: datetime | None
    updated_at: datetime | None
    accepted_at: datetime | None = None
    rendered_at: datetime | None = None
    delivered_at: datetime | None = None
    bounced_at: datetime | None = None
    failed_at: datetime | None = None
    opens: int = 0
    first_opened_at: datetime | None = None
    clicks: int = 0
    first_clicked_at: datetime | None = None
    complained_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    resent_as: list[str] = []
    trace_id: str | None = Field(default=None, description="the message's OpenTelemetry trace")
    send_at: datetime | None = None
    as_of: datetime | None = Field(default=None, description="set when folded from the log")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Message:
        renamed = {"to": "to_addrs", "cc": "cc_addrs", "bcc": "bcc_addrs"}
        return cls(**{f: row[renamed.get(f, f)] for f in cls.model_fields if f != "as_of"})

    @classmethod
    def from_state(cls, state: MessageState, as_of: datetime) -> Message:
        values = state.model_dump()
        values["id"] = values.pop("message_id")
        return cls(**{f: values[f] for f in cls.model_fields if f in values}, as_of=as_of)


_COLUMNS = {"to": "to_addrs", "cc": "cc_addrs", "bcc": "bcc_addrs"}
_FIELDS = tuple(Message.model_fields)
# Message's fields in order, as a msgspec Struct: encoded by msgspec as Litestar encodes
# the model, without validating a model or building a dict per row
_MessageJson = msgspec.defstruct("MessageJson", _FIELDS)
_encode = msgspec.json.Encoder().encode
# the `messages` columns of Message's fields, in their order (None: as_of, not stored)
MESSAGE_COLUMNS = tuple(None if f == "as_of" else _COLUMNS.get(f, f) for f in _FIELDS)


def message_json(row: dict[str, Any]) -> bytes:
    """A `messages` row as `Message`'s JSON, byte for byte what Litestar makes of
    `Message.from_row(row)` (fields in order, encoded by msgspec), without building and
    validating the model: the columns have the fields' types already (the table is ours)."""
    return message_json_values(tuple(row.get(_COLUMNS.get(f, f)) for f in _FIELDS))


def message_json_values(values: Sequence[Any]) -> bytes:
    """`message_json` of the row selected as MESSAGE_COLUMNS (a tuple, in field order)."""
    return _encode(_MessageJson(*values))


class MessagePage(Body):
    items: list[Message]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: done")


class TimelineEvent(Body):
    seq: int
    type: str
    occurred_at: datetime
    data: dict[str, Any]


class Timeline(Body):
    message_id: str
    items: list[TimelineEvent]


class Suppression(Body):
    address: str
    scope: str
    reason: str
    message_id: str | None
    event_id: str | None
    created_at: datetime
    expires_at: datetime | None


class SuppressionPage(Body):
    items: list[Suppression]
    next_cursor: str | None


class SuppressionAccepted(Body):
    address: str
    scope: str


class DailyCount(Body):
    day: date
    template: str
    outcome: str
    count: int


class Stats(Body):
    since: datetime | None
    until: datetime | None
    total: int
    by_status: dict[str, int]
    daily: list[DailyCount]


class TemplateSummary(Body):
    name: str
    version: str
    parts: list[str]
    variables: list[str]


class TemplateList(Body):
    items: list[TemplateSummary]


class Preview(Body):
    template: str
    version: str
    subject: str
    html: str | None
    text: str | None
