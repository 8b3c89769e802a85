"""`EncodedJSON`: a handler's answer whose JSON is already bytes (the hot routes encode
their bodies with msgspec: schemas.message_json_values, schemas.accepted_json), sent as
those bytes with the two headers Litestar would have set.

Litestar turns a `Response` into an `ASGIResponse` on every request: dicts of headers
and cookies merged, a serializer looked up, a `MutableScopeHeaders` filled header by
header and encoded again; about a twentieth of a GET's CPU for a body that needs none
of it. `to_asgi_response` is Litestar's own hook for that step: here it answers with
`Sent`, which sends the same two ASGI messages, unless the route or a hook added
anything (headers, cookies, a background task), which takes Litestar's general path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from litestar import MediaType, Request, Response
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.datastructures import Cookie
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send, TypeEncodersMap

JSON = MediaType.JSON.value.encode()


class Sent(ASGIResponse):
    """The ASGI side: a status and a JSON body, nothing else to build."""

    __slots__ = ()

    def __init__(self, body: bytes, status_code: int) -> None:  # no super(): nothing to build
        self.body, self.status_code = body, status_code

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", JSON), (b"content-length", b"%d" % len(self.body))]
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


class EncodedJSON(Response[bytes]):
    """`Response(body, status_code=..., media_type=MediaType.JSON)`, for bytes that are
    JSON already; the same answer on the wire."""

    def __init__(self, body: bytes, status_code: int = 200) -> None:
        # Response.__init__'s attributes, set as it would set them from these arguments
        # (it spent a twentieth of a GET on isinstance checks against typing.Mapping)
        self.content, self.status_code, self.media_type = body, status_code, MediaType.JSON
        self.background, self.encoding = None, "utf-8"
        self.cookies, self.headers, self.response_type_encoders = [], {}, {}

    def to_asgi_response(
        self,
        app: Any,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        extra = (self.headers or self.cookies or self.background or background or cookies
                 or encoded_headers or headers or is_head_response)  # fmt: skip
        if extra or self.media_type != MediaType.JSON:
            return super().to_asgi_response(
                app, request, background=background, cookies=cookies,
                encoded_headers=encoded_headers, headers=headers,
                is_head_response=is_head_response, media_type=media_type,
                status_code=status_code, type_encoders=type_encoders,
            )  # fmt: skip
        return Sent(self.content, self.status_code or status_code or 200)
