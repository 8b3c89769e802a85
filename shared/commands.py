"""Send commands as callers publish them on `mail.cmd.send` (or POST them).

The model is strict (unknown fields are refused) and header-safe: a CR, LF or NUL
in any address, subject, tag or header is refused here, before anything is
rendered, so no later step can be tricked into writing an extra header.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events import Track
from shared.mailbox import Mailbox, has_line_break, parse_mailbox
from shared.subjects import MESSAGE_ID_RE

MAX_RECIPIENTS = 50
_HEADER_NAME_RE = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 field-name: printable, no colon
# Headers jetpost writes itself; a caller may not set or override them.
RESERVED_HEADERS = frozenset(
    {
        "from", "to", "cc", "bcc", "subject", "date", "message-id", "reply-to", "sender",
        "mime-version", "content-type", "content-transfer-encoding", "return-path",
        "dkim-signature", "received",
    }
)  # fmt: skip


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _has_nul(value: Any) -> bool:
    """A NUL anywhere in a JSON value: PostgreSQL text and jsonb cannot store one."""
    if isinstance(value, str):
        return "\0" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _mailboxes(values: list[str]) -> tuple[Mailbox, ...]:
    return tuple(parse_mailbox(v) for v in values)


class SendCommand(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    to: tuple[Mailbox, ...]
    cc: tuple[Mailbox, ...] = ()
    bcc: tuple[Mailbox, ...] = ()
    from_: Mailbox | None = Field(default=None, alias="from")
    reply_to: tuple[Mailbox, ...] = ()
    template: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    tags: tuple[str, ...] = ()
    message_id: str | None = None
    idempotency_key: str | None = Field(default=None, max_length=256)
    # Open and click tracking for this message; unset: JETPOST_TRACK_OPENS / _CLICKS.
    track: Track | None = None
    # Transactional mail (a password reset, a receipt) is not a list: no
    # List-Unsubscribe, and only global suppressions apply, not per-list ones.
    transactional: bool = False

    @field_validator("to", "cc", "bcc", "reply_to", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        value = _as_list(value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            # objects would skip parse_mailbox: its validation, normalising and CR/LF check
            raise ValueError("addresses are strings: 'Name <addr>' or 'addr', or a list of them")
        return _mailboxes(value)

    @field_validator("from_", mode="before")
    @classmethod
    def _from(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise ValueError("an address is a string: 'Name <addr>' or 'addr'")
        return parse_mailbox(value) if isinstance(value, str) else value

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str | None) -> str | None:
        if value is not None and has_line_break(value):
            raise ValueError("subject contains a line break")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, content in value.items():
            if not _HEADER_NAME_RE.match(name):
                raise ValueError(f"invalid header name {name!r}")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by jetpost and cannot be given")
            if has_line_break(content):
                raise ValueError(f"header {name!r} contains a line break")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tag in value:
            if not tag or len(tag) > 64 or has_line_break(tag):
                raise ValueError(f"invalid tag {tag!r} (1-64 characters, no line breaks)")
        return value

    @field_validator("message_id")
    @classmethod
    def _message_id(cls, value: str | None) -> str | None:
        if value is not None and not MESSAGE_ID_RE.match(value):
            raise ValueError("message_id must be 1-128 characters of [A-Za-z0-9_-]")
        return value

    @field_validator("html", "text", "vars")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError("contains a NUL character")
        return value

    @model_validator(mode="after")
    def _content(self) -> SendCommand:
        if not self.to:
            raise ValueError("at least one 'to' recipient is required")
        if len(self.to) + len(self.cc) + len(self.bcc) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients (to + cc + bcc)")
        literal = self.subject is not None or self.html is not None or self.text is not None
        if self.template and literal:
            raise ValueError("give either 'template' (+ 'vars') or 'subject' + 'html'/'text'")
        if not self.template:
            if self.subject is None or (self.html is None and self.text is None):
                raise ValueError("without 'template', 'subject' and 'html' or 'text' are needed")
            if self.vars:
                raise ValueError("'vars' need a 'template'")
        return self

    def body_hash(self) -> str:
        """What an idempotency key is bound to: the content, not the key or a fresh id."""
        # Without `track`, the hash is what it was before the field existed.
        skip = {"idempotency_key", "message_id"} | ({"track"} if self.track is None else set())
        skip |= {"transactional"} if not self.transactional else set()
        data = self.model_dump(mode="json", by_alias=True, exclude=skip)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class BatchRecipient(BaseModel):
    """One recipient of a templated batch: its address and its own variables."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    to: Any
    vars: dict[str, Any] = Field(default_factory=dict)
    message_id: str | None = None


class SendBatchCommand(BaseModel):
    """`mail.cmd.send_batch`: either `messages` (full send commands), or one template
    with shared fields and a list of `recipients`. Intake fans it out into one message
    per entry; each entry is accepted or rejected on its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    messages: list[dict[str, Any]] | None = Field(default=None, max_length=1000)
    template: str | None = None
    shared: dict[str, Any] = Field(default_factory=dict)
    recipients: list[BatchRecipient] | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _one_form(self) -> SendBatchCommand:
        if (self.messages is None) == (self.recipients is None):
            raise ValueError("give either 'messages' or 'template' + 'recipients'")
        if self.recipients is not None and not self.template:
            raise ValueError("'recipients' need a 'template'")
        return self

    def expand(self) -> list[dict[str, Any]]:
        """The batch as plain send-command payloads, validated one by one later."""
        if self.messages is not None:
            return self.messages
        assert self.recipients is not None
        return [
            {
                **self.shared,
                "template": self.template,
                "to": r.to,
                "vars": {**self.shared.get("vars", {}), **r.vars},
                **({"message_id": r.message_id} if r.message_id else {}),
            }
            for r in self.recipients
        ]


class ResendCommand(BaseModel):
    """`mail.cmd.resend`: a new message from an earlier one's content."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: str
    new_message_id: str
    rerender: bool = False

    @field_validator("message_id", "new_message_id")
    @classmethod
    def _ids(cls, value: str) -> str:
        if not MESSAGE_ID_RE.match(value):
            raise ValueError("message ids are 1-128 characters of [A-Za-z0-9_-]")
        return value


class SuppressCommand(BaseModel):
    """`mail.cmd.suppress` / `mail.cmd.unsuppress`: manual changes to the suppression set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str
    scope: str = Field(default="", max_length=64)
    reason: str = Field(default="manual", max_length=500)
    source: Literal["manual", "unsubscribe"] = "manual"
    cause_message_id: str | None = Field(default=None, pattern=MESSAGE_ID_RE.pattern)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return parse_mailbox(value).email.lower()


class WebhookEndpointRef(BaseModel):
    """`mail.cmd.webhook_delete`, and the base of the other webhook endpoint commands."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint_id: str = Field(pattern=MESSAGE_ID_RE.pattern)


class WebhookCreateCommand(WebhookEndpointRef):
    """`mail.cmd.webhook_create`: `secret` is already encrypted (services/webhooks)."""

    url: str = Field(max_length=2048)
    events: tuple[str, ...]
    description: str = Field(default="", max_length=500)
    enabled: bool = True
    secret: str = Field(max_length=2000)


class WebhookUpdateCommand(WebhookEndpointRef):
    url: str | None = Field(default=None, max_length=2048)
    events: tuple[str, ...] | None = None
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class WebhookRotateCommand(WebhookEndpointRef):
    secret: str = Field(max_length=2000)


class WebhookReplayCommand(WebhookEndpointRef):
    """From a stream sequence or a time, up to `until_seq` (the log's end when asked)."""

    replay_id: str = Field(pattern=MESSAGE_ID_RE.pattern)
    seq: int | None = Field(default=None, ge=1)
    since: datetime | None = None
    until_seq: int = Field(ge=0)

    @model_validator(mode="after")
    def _one_start(self) -> WebhookReplayCommand:
        if (self.seq is None) == (self.since is None):
            raise ValueError("give either 'seq' or 'since'")
        return self
