"""Attachment parts for a message built by mime.py: their bytes from the Object Store.

The HTML part mime.py builds becomes multipart/related with the inline parts it
references by `cid:`, and the whole body goes inside multipart/mixed with the
attachments proper:

    mixed[ alternative[ text, related[ html, inline... ] ], attachment... ]
"""

from __future__ import annotations

from email.message import EmailMessage

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from shared.attachments import BUCKET, AttachmentRef


class MissingAttachment(ValueError):
    """An attachment's object is not in the store: the mail cannot be built."""


async def load(js: JetStreamContext, refs: tuple[AttachmentRef, ...]) -> list[bytes]:
    if not refs:
        return []
    store = await js.object_store(BUCKET)
    blobs = []
    for ref in refs:
        try:
            result = await store.get(ref.object)
        except NotFoundError as exc:  # ObjectNotFoundError, ObjectDeletedError
            raise MissingAttachment(f"attachment {ref.filename!r}: no object") from exc
        blobs.append(result.data or b"")
    return blobs


def attach(msg: EmailMessage, refs: tuple[AttachmentRef, ...], blobs: list[bytes]) -> None:
    """Add inline parts (related) first, then attachments (mixed)."""
    pairs = list(zip(refs, blobs, strict=True))
    html = msg.get_body(("html",))
    host = html if isinstance(html, EmailMessage) else msg
    for ref, data in (p for p in pairs if p[0].content_id):
        maintype, _, subtype = ref.content_type.partition("/")
        host.add_related(data, maintype=maintype, subtype=subtype, cid=f"<{ref.content_id}>",
                        filename=ref.filename, disposition="inline")  # fmt: skip
    for ref, data in (p for p in pairs if not p[0].content_id):
        maintype, _, subtype = ref.content_type.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=ref.filename)
