"""Click and open tracking: the public, keyless endpoints the renderer's links point at
(services/renderer/tracking.py).

A click redirects only to the URL its token signed at render time, so no one can
turn these links into an open redirect; a token that does not verify gets a 404
and no redirect, whatever the message id in it. The pixel is answered with the
same GIF whether or not its token verifies; only a good token appends `opened`.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from services.api.problems import Problem
from services.api.public import PRIVATE_HEADERS, Public, record_hit
from services.api.routing import get
from shared.events import Clicked, Opened, event_id_for
from shared.tokens import TokenError, read_click, read_open

TAGS = ["public"]
MAX_USER_AGENT = 512
# A 1x1 transparent GIF89a: a two-colour table and a graphic control extension that
# makes colour 0 transparent.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    b"!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def user_agent(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("user-agent", "")[:MAX_USER_AGENT]


@get("/t/c/{token:str}", summary="Follow a tracked link", tags=TAGS)
async def click(
    pub: NamedDependency[Public], request: Request[Any, Any, Any], token: FromPath[str]
) -> Redirect:
    pub.admit(request, token)
    try:
        message_id, url = read_click(pub.keys, token)
    except TokenError:
        raise Problem(404, "not-found", "this link is not valid", headers=PRIVATE_HEADERS) from None
    if (n := pub.hit_number(token)) is not None:  # a repeat in the window is only counted
        event = Clicked(
            event_id=event_id_for(message_id, "clicked", n), message_id=message_id,
            correlation_id=message_id, url=url, user_agent=user_agent(request),
        )  # fmt: skip
        # Not recorded (NATS away)? Logged; the person who clicked still gets there.
        await record_hit(pub, event, n)
    # Redirect percent-encodes what a Location header cannot carry (non-ASCII, spaces).
    return Redirect(url, status_code=302, headers=PRIVATE_HEADERS)


@get("/t/o/{token:path}", summary="The open-tracking pixel", tags=TAGS)
async def pixel(
    pub: NamedDependency[Public], request: Request[Any, Any, Any], token: FromPath[str]
) -> Response[bytes]:
    token = token.strip("/")
    pub.admit(request, token)
    try:
        message_id = read_open(pub.keys, token)
    except TokenError:
        message_id = None
    if message_id is not None and (n := pub.hit_number(token)) is not None:
        event = Opened(
            event_id=event_id_for(message_id, "opened", n), message_id=message_id,
            correlation_id=message_id, user_agent=user_agent(request),
        )  # fmt: skip
        await record_hit(pub, event, n)
    return Response(PIXEL, media_type="image/gif", headers=PRIVATE_HEADERS)


ROUTES = [click, pixel]
