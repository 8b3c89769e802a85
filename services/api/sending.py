"""Sending: one message, a batch, a resend. Each publishes one command to MAIL_CMD
and answers 202 once JetStream has acked it; intake does the rest.

The command published is the caller's JSON as sent (validated here first, so
callers learn of mistakes at once) plus the ids assigned here.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import anyio.to_thread
from litestar import Request, Response
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath, HeaderParameter, JSONBody
from pydantic import ValidationError

from services.api.attachments import check_attachments
from services.api.auth import SECURITY, SEND
from services.api.batch_ids import claim_batch, keyed_id, refuse_taken, settle_ids
from services.api.encoded import EncodedJSON
from services.api.messages import known_id, message_row
from services.api.problems import Problem
from services.api.routing import post
from services.api.runtime import Runtime
from services.api.scheduling import max_ahead
from services.api.schemas import BatchAccepted, MessageAccepted, ResendRequest, accepted_json
from services.precheck import check_command, errors_of
from shared.commands import ResendCommand, SendBatchCommand, SendCommand
from shared.subjects import CMD_RESEND, CMD_SEND, CMD_SEND_BATCH

TAGS = ["sending"]
SEND_BODY = Body(
    description="A send command (see the README). Addresses are strings, `Name <addr>` or "
    "bare, alone or in a list; give `template` + `vars`, or `subject` + `html`/`text`.",
    examples=[
        Example(summary="a template", value={"to": "Alice <alice@example.com>",
                "template": "welcome", "vars": {"name": "Alice"}, "tags": ["signup"]}),
        Example(summary="literal content", value={"to": ["bob@example.com"],
                "subject": "Hello", "text": "Hi Bob", "html": "<p>Hi Bob</p>"}),
    ],
)  # fmt: skip


IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(name="Idempotency-Key", min_length=1, max_length=256,
                    description="the same key with the same body gives the same id(s) again"),
]  # fmt: skip


def new_id() -> str:
    """`uuid.uuid4().hex`, without building the UUID object (a few percent of a send)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    return raw.hex()


def _precheck(rt: Runtime, command: SendCommand) -> str | None:
    """Unknown template or a variable missing: refused now rather than accepted."""
    info = rt.templates.get(command.template or "")
    return check_command(command, rt.preview_catalog or rt.catalog, rt.settings.sender_from,
                         rt.mail_domain, info.variables if info else None)  # fmt: skip


@post(
    "/v1/messages",
    summary="Send one message",
    status_code=202,
    guards=SEND,
    security=SECURITY,
    tags=TAGS,
)
async def send_message(
    rt: NamedDependency[Runtime],
    request: Request[Any, Any, Any],
    data: Annotated[SendCommand, SEND_BODY],
    idempotency_key: IdempotencyKey = None,
) -> Response[MessageAccepted]:
    if idempotency_key and data.idempotency_key and idempotency_key != data.idempotency_key:
        detail = "the Idempotency-Key header and the body's idempotency_key differ"
        raise Problem(422, "idempotency-key-mismatch", detail)
    if problem := _precheck(rt, data):
        raise Problem(422, "invalid-command", problem)
    if data.send_at is not None:
        max_ahead(rt, data.send_at)
    too_big(rt, data)
    await check_attachments(rt, data)
    key = idempotency_key or data.idempotency_key
    message_id = data.message_id or new_id()
    if key:
        command = data.model_copy(update={"idempotency_key": key})
        held = await rt.bus.claim(key, message_id, command.body_hash())
        if not held.same_body:
            raise Problem(409, "idempotency-conflict",
                          f"idempotency key already used with a different body "
                          f"(message {held.message_id})", message_id=held.message_id)  # fmt: skip
        message_id = held.message_id
    elif data.message_id:
        await refuse_taken(rt, data.message_id)
    payload: dict[str, Any] = {**await request.json(), "message_id": message_id}
    if key:
        payload["idempotency_key"] = key
    # Published even when the key was held already: a crash between the claim and the
    # publish must not lose the message; intake deduplicates the repeat.
    await rt.bus.publish(CMD_SEND, payload, message_id)
    # MessageAccepted's JSON, encoded here: the model's trip through Litestar's
    # serializer cost a tenth of the request
    return EncodedJSON(accepted_json(message_id), status_code=202)  # type: ignore[return-value]


def _batch_commands(rt: Runtime, entries: list[dict[str, Any]]) -> list[SendCommand]:
    """Every entry as a command, or a 422 naming every bad entry."""
    commands: list[SendCommand] = []
    errors: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        try:
            command = SendCommand.model_validate(entry)
        except ValidationError as exc:
            errors.append({"index": index, "detail": errors_of(exc)})
            continue
        if problem := _precheck(rt, command) or _too_far(rt, command):
            errors.append({"index": index, "detail": problem})
        commands.append(command)
    if not entries:
        raise Problem(422, "invalid-batch", "the batch has no entries")
    if errors:
        raise Problem(422, "invalid-batch",
                      f"{len(errors)} of {len(entries)} entries are invalid: " + "; ".join(
                          f"[{e['index']}] {e['detail']}" for e in errors[:10]),
                      errors=errors)  # fmt: skip
    return commands


def too_big(rt: Runtime, command: SendCommand) -> None:
    """A send whose rendered mail would not fit in NATS: 413 now, not a failure later."""
    size, limit = command.content_bytes(), rt.settings.max_content_bytes
    if size > limit:
        raise Problem(413, "too-large", f"content: {size} bytes of html, text and vars; at most "
                      f"{limit} (JETPOST_MAX_CONTENT_BYTES)", limit=limit)  # fmt: skip


def _too_far(rt: Runtime, command: SendCommand) -> str | None:
    try:
        if command.send_at is not None:
            max_ahead(rt, command.send_at)
    except Problem as exc:
        return exc.detail
    return None


def _entry_ids(commands: list[SendCommand], key: str | None) -> list[str]:
    """The caller's id, else one from the batch's key (the same again on a retry),
    else a new one; a repeated id is a 422."""
    ids = [c.message_id or (keyed_id(key, i) if key else new_id()) for i, c in enumerate(commands)]
    repeated = sorted({m for m in ids if ids.count(m) > 1})
    if repeated:
        raise Problem(422, "invalid-batch", f"message_id repeats in the batch: {repeated[:10]}")
    return ids


@post(
    "/v1/messages/batch",
    summary="Send up to 1000 messages at once",
    status_code=202,
    guards=SEND,
    security=SECURITY,
    tags=TAGS,
)
async def send_batch(
    rt: NamedDependency[Runtime],
    request: Request[Any, Any, Any],
    data: JSONBody[SendBatchCommand],
    idempotency_key: IdempotencyKey = None,
) -> BatchAccepted:
    # up to 1000 entries of 50 addresses: validated off the event loop, so one big
    # batch cannot hold up every other request meanwhile
    commands = await anyio.to_thread.run_sync(_batch_commands, rt, data.expand())
    for command in commands:
        too_big(rt, command)
        await check_attachments(rt, command)
    payload: dict[str, Any] = await request.json()
    batch_id = await claim_batch(rt, idempotency_key, payload) if idempotency_key else new_id()
    ids = await settle_ids(rt, commands, _entry_ids(commands, idempotency_key))
    listed = payload["messages"] if data.messages is not None else payload["recipients"]
    for entry, message_id in zip(listed, ids, strict=True):
        entry["message_id"] = message_id
    await rt.bus.publish(CMD_SEND_BATCH, payload, batch_id)
    return BatchAccepted(batch_id=batch_id, ids=ids)


@post(
    "/v1/messages/{message_id:str}/resend",
    summary="Send a message again",
    status_code=202,
    guards=SEND,
    security=SECURITY,
    tags=TAGS,
)
async def resend_message(
    rt: NamedDependency[Runtime],
    message_id: FromPath[str],
    data: JSONBody[ResendRequest | None] = None,
) -> MessageAccepted:
    return await resend(rt, message_id, rerender=data.rerender if data else False)


async def resend(rt: Runtime, message_id: str, *, rerender: bool) -> MessageAccepted:
    if await message_row(rt, known_id(message_id)) is None:
        raise Problem(404, "not-found", f"no message {message_id!r}")
    command = ResendCommand(message_id=message_id, new_message_id=new_id(),
                            rerender=rerender)  # fmt: skip
    await rt.bus.publish(CMD_RESEND, command.model_dump(mode="json"), command.new_message_id)
    return MessageAccepted(id=command.new_message_id)


ROUTES = [send_message, send_batch, resend_message]
