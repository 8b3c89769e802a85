"""Attachments: what a send command may carry, and the small reference events keep.

A command gives each attachment as base64 `content` or as the `object` id of an
upload (`POST /v1/attachments`). Content never travels in events: intake puts it in
the NATS Object Store (bucket `mail_attachments`, named by its SHA-256, so a retry
stores it once) and `accepted`/`rendered` carry a reference; the sender reads the
bytes back when it builds the MIME message (services/sender/attachments.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BUCKET = "mail_attachments"
_CONTENT_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}$"
)
_CID = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]{1,128}$")
_OBJECT = re.compile(r"^[0-9a-f]{64}$")


def sanitize_filename(name: str) -> str:
    """A file name a mail client can show and save, and no path: directories, control
    and quoting characters go; at most 120 characters, the extension kept."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable() and c not in '"<>:|?*;')
    name = name.strip().lstrip(".") or "attachment"
    if len(name) > 120:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 119 - len(ext)] + dot + ext) if dot and len(ext) <= 10 else name[:120]
    return name


def object_id(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class AttachmentIn(BaseModel):
    """One attachment of a send command."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    filename: str = Field(min_length=1, max_length=1000)
    content_type: str = "application/octet-stream"
    content: str | None = None  # base64
    object: str | None = None  # an upload's id
    content_id: str | None = None  # inline: referenced as cid:<content_id> in the HTML

    @field_validator("filename")
    @classmethod
    def _name(cls, value: str) -> str:
        return sanitize_filename(value)

    @field_validator("content_type")
    @classmethod
    def _type(cls, value: str) -> str:
        if not _CONTENT_TYPE.match(value):
            raise ValueError(f"invalid content_type {value!r} (type/subtype)")
        return value.lower()

    @field_validator("content_id")
    @classmethod
    def _cid(cls, value: str | None) -> str | None:
        if value is not None and not _CID.match(value):
            raise ValueError(f"invalid content_id {value!r}")
        return value

    @field_validator("object")
    @classmethod
    def _object(cls, value: str | None) -> str | None:
        if value is not None and not _OBJECT.match(value):
            raise ValueError("object: an upload id (64 hex characters)")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> AttachmentIn:
        if (self.content is None) == (self.object is None):
            raise ValueError("give an attachment's 'content' (base64) or 'object' (an upload id)")
        if self.content is not None:
            self.decoded()  # a bad encoding is refused with the command
        return self

    def decoded(self) -> bytes:
        try:
            return base64.b64decode(self.content or "", validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{self.filename}: content is not valid base64") from None

    def extension(self) -> str:
        return self.filename.rpartition(".")[2].lower() if "." in self.filename else ""


class AttachmentRef(BaseModel):
    """An attachment as events keep it: where its bytes are, and how to label them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    filename: str
    content_type: str
    object: str
    size: int | None = None  # unknown for an upload named by id
    content_id: str | None = None


def limits_problem(
    attachments: tuple[AttachmentIn, ...], blocked: frozenset[str], max_count: int
) -> str | None:
    """Why these attachments are refused (blocked type, too many), or None."""
    if len(attachments) > max_count:
        return f"attachments: at most {max_count} (JETPOST_MAX_ATTACHMENTS)"
    for item in attachments:
        if item.extension() in blocked:
            return (f"attachments: {item.filename!r}: .{item.extension()} files are not "
                    "accepted (JETPOST_BLOCKED_EXTENSIONS)")  # fmt: skip
    return None


def inline_size(attachments: tuple[AttachmentIn, ...]) -> int:
    return sum(len(a.decoded()) for a in attachments if a.content is not None)
