"""One-click unsubscribe (RFC 8058) behind the List-Unsubscribe header (RFC 2369).

`POST /u/<token>` is the one-click request a mail client makes (body
`List-Unsubscribe=One-Click`, or none from the confirmation page): no cookies, no
redirect. It publishes `mail.cmd.suppress` (the address joins the suppression set
for the list) and appends `unsubscribed` to the message; doing it again changes
nothing. `GET /u/<token>` only shows a page whose button makes that POST, so a link
scanner following the URL unsubscribes no one. The token signs (message id,
recipient, scope); a bad one gets the same 404 page whatever it names.
"""

from __future__ import annotations

import hashlib
from html import escape

from litestar import MediaType, Response
from litestar.di import NamedDependency
from litestar.params import FromPath
from pydantic import ValidationError

from services.api.problems import Unavailable
from services.api.public import PRIVATE_HEADERS, Public
from services.api.routing import get, post
from shared.commands import SuppressCommand
from shared.consumers import TRANSIENT_ERRORS
from shared.eventlog import append, last_event
from shared.events import Unsubscribed, event_id_for
from shared.subjects import CMD_SUPPRESS
from shared.tokens import TokenError, Unsubscribe, read_unsubscribe

TAGS = ["public"]
PAGE_HEADERS = {
    **PRIVATE_HEADERS,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title>
<style>body{{font-family:Helvetica,Arial,sans-serif;max-width:32em;margin:3em auto;padding:0 1em;
color:#1f2937}}button{{padding:.6em 1.2em;font-size:1em}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def page(status: int, title: str, body: str) -> Response[str]:
    return Response(
        _PAGE.format(title=escape(title), body=body),
        status_code=status, media_type=MediaType.HTML, headers=PAGE_HEADERS,
    )  # fmt: skip


def _list(scope: str) -> str:
    return f"&ldquo;{escape(scope)}&rdquo; mail" if scope else "our mail"


def _invalid() -> Response[str]:
    return page(404, "Link not valid", "<p>This unsubscribe link is not valid.</p>")


def _digest(claims: Unsubscribe) -> bytes:
    return hashlib.sha256(f"{claims.recipient}|{claims.scope}".encode()).digest()


async def unsubscribe_once(pub: Public, claims: Unsubscribe, command: SuppressCommand) -> None:
    """Suppress first, then record `unsubscribed`: once that event is there, the
    suppress command was stored before it, so a repeat has nothing left to do."""
    bus, digest = pub.bus, _digest(claims)
    try:
        last = await last_event(bus.js, claims.message_id, "unsubscribed")
        if (
            isinstance(last, Unsubscribed)
            and last.recipient == claims.recipient
            and (last.scope or "") == claims.scope
        ):
            return
        msg_id = f"unsub:{claims.message_id}:{digest[:12].hex()}"  # a repeat is deduplicated
        await bus.publish(CMD_SUPPRESS, command.model_dump(mode="json"), msg_id)
        n = int.from_bytes(digest[:4], "big") or 1
        await append(bus.js, Unsubscribed(
            event_id=event_id_for(claims.message_id, "unsubscribed", n),
            message_id=claims.message_id, correlation_id=claims.message_id,
            recipient=claims.recipient, scope=claims.scope or None,
        ), n)  # fmt: skip
    except TRANSIENT_ERRORS as exc:
        raise Unavailable(f"NATS unavailable (unsubscribe): {type(exc).__name__}") from exc


def _claims(pub: Public, token: str) -> tuple[Unsubscribe, SuppressCommand] | None:
    try:
        claims = read_unsubscribe(pub.keys, token)
        command = SuppressCommand(address=claims.recipient, scope=claims.scope,
                                  reason="unsubscribed", source="unsubscribe",
                                  cause_message_id=claims.message_id)  # fmt: skip
    except (TokenError, ValidationError):
        return None
    return claims, command


@get("/u/{token:str}", summary="Unsubscribe: the confirmation page", tags=TAGS)
async def confirm_page(pub: NamedDependency[Public], token: FromPath[str]) -> Response[str]:
    found = _claims(pub, token)
    if found is None:
        return _invalid()
    claims, _ = found
    form = (
        f"<p>Stop sending {_list(claims.scope)} to <strong>{escape(claims.recipient)}</strong>?"
        '</p><form method="post"><input type="hidden" name="List-Unsubscribe" '
        'value="One-Click"><button type="submit">Unsubscribe</button></form>'
    )
    return page(200, "Unsubscribe", form)


@post("/u/{token:str}", summary="Unsubscribe (RFC 8058 one-click)", status_code=200, tags=TAGS)
async def unsubscribe(pub: NamedDependency[Public], token: FromPath[str]) -> Response[str]:
    found = _claims(pub, token)
    if found is None:
        return _invalid()
    claims, command = found
    await unsubscribe_once(pub, claims, command)
    done = f"<p>{escape(claims.recipient)} will get no more {_list(claims.scope)}.</p>"
    return page(200, "Unsubscribed", done)


ROUTES = [confirm_page, unsubscribe]
