"""Attachments over HTTP: uploads into the Object Store, and the checks a send's
attachments get before its command is published (422 refused, 413 too large)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from nats.js.errors import NotFoundError

from services.api.auth import SECURITY, SEND
from services.api.problems import Problem
from services.api.routing import post
from services.api.runtime import Runtime
from services.api.schemas import Body
from shared.attachments import BUCKET, inline_size, limits_problem, object_id
from shared.commands import SendCommand

TAGS = ["sending"]


class Uploaded(Body):
    id: str
    size: int


@post("/v1/attachments", summary="Upload an attachment's content; use its id as `object`",
      status_code=201, guards=SEND, security=SECURITY, tags=TAGS)  # fmt: skip
async def upload(
    rt: NamedDependency[Runtime],
    request: Request[Any, Any, Any],
    filename: Annotated[str | None, QueryParameter(description="for the logs only")] = None,
) -> Uploaded:
    limit = rt.settings.max_attachment_bytes
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise Problem(413, "too-large", f"an attachment is at most {limit} bytes "
                          "(JETPOST_MAX_ATTACHMENT_BYTES)", limit=limit)  # fmt: skip
    if not data:
        raise Problem(422, "invalid-attachment", "the body is the attachment's content")
    name = object_id(data)
    with rt.bus.reachable("attachments"):
        store = await rt.bus.js.object_store(BUCKET)
        await store.put(name, data)
    return Uploaded(id=name, size=len(data))


async def check_attachments(rt: Runtime, command: SendCommand) -> None:
    if not command.attachments:
        return
    if problem := limits_problem(command.attachments, rt.settings.blocked,
                                 rt.settings.max_attachments):  # fmt: skip
        raise Problem(422, "invalid-command", problem)
    limit = rt.settings.max_attachment_bytes
    if (size := inline_size(command.attachments)) > limit:
        raise Problem(413, "too-large", f"attachments: {size} bytes; at most {limit} "
                      "(JETPOST_MAX_ATTACHMENT_BYTES)", limit=limit)  # fmt: skip
    objects = [a for a in command.attachments if a.object]
    if not objects:
        return
    with rt.bus.reachable("attachments"):
        store = await rt.bus.js.object_store(BUCKET)
        for item in objects:
            try:
                await store.get_info(item.object or "")
            except NotFoundError:
                raise Problem(422, "invalid-command",
                              f"attachments: no upload {item.object!r}") from None  # fmt: skip


ROUTES = [upload]
