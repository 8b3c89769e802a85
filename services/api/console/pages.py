"""The console's pages. Every read goes through the API's own query functions
(services.api.messages, suppressions, stats, templates, keys), so a page shows what
the API answers; every write publishes the same command the API would."""

from __future__ import annotations

import json
from html import escape
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from pydantic import ValidationError

from services.api import keys, messages, scheduling, sending, stats, suppressions, templates
from services.api.console import charts, inbox, mailview
from services.api.console.session import ConsoleSession, Form, Rt, Session
from services.api.problems import Problem
from services.api.runtime import Runtime
from services.api.schemas import Message
from services.intake import cancel
from services.precheck import errors_of
from shared.commands import SuppressCommand
from shared.fold import STATUS_RANK, fold
from shared.scheduling import CancelCommand

FILTERS = ("status", "to", "template", "tag", "since", "until")
STATUSES = sorted(set(STATUS_RANK) - {"unknown"}, key=lambda s: (STATUS_RANK[s], s))
Req = Request[Any, Any, Any]


class Forbidden(Exception):
    def __init__(self, scope: str) -> None:
        super().__init__(f"this key lacks the {scope!r} scope")


def need(session: ConsoleSession, scope: str) -> None:
    if not session.allows(scope):
        raise Forbidden(scope)


def page(template: str, session: ConsoleSession, /, **context: Any) -> Template:
    return Template(
        media_type="text/html", template_name=template, context={"session": session, **context}
    )


def _filters(request: Req) -> dict[str, str]:
    return {name: request.query_params.get(name, "").strip() for name in FILTERS}


async def _page_of(rt: Runtime, given: dict[str, str], cursor: str | None) -> Any:
    filters: dict[str, Any] = {k: v or None for k, v in given.items()}
    filters["since"] = messages.when(given["since"], "since")
    filters["until"] = messages.when(given["until"], "until")
    return await messages.find_messages(rt, filters, cursor or None, 50)


@get("/", name="console:home")
async def home() -> Redirect:
    return Redirect("/console/messages")


@get("/messages")
async def message_list(rt: Rt, request: Req, session: Session) -> Template:
    need(session, "read")
    given = _filters(request)
    found = await _page_of(rt, given, request.query_params.get("cursor"))
    rows_only = request.headers.get("hx-request") and not request.headers.get(
        "hx-history-restore-request"
    )  # the back button asks htmx for a whole page
    name = "_rows.html" if rows_only else "messages.html"
    return page(name, session, page=found, filters=given, query=_query(given), statuses=STATUSES)


def _query(given: dict[str, str]) -> str:
    return urlencode({k: v for k, v in given.items() if v})


@get("/messages/{message_id:str}")
async def message_page(
    rt: Rt, request: Req, message_id: FromPath[str], session: Session
) -> Template:
    need(session, "read")
    messages.known_id(message_id)
    row = await messages.message_row(rt, message_id)
    if row is None:
        raise Problem(404, "not-found", f"no message {message_id!r}")
    timeline = await messages.timeline(rt, message_id)
    events = await rt.bus.history(message_id)
    status = fold(events).status  # from the log, as cancel decides (the row may lag)
    return page(
        "message.html",
        session,
        message=Message.from_row(row),
        status=status,
        timeline=timeline.items,
        mail=mailview.rendered_mail(events),
        body_url=f"/console/messages/{message_id}/body",
        cancellable=status in cancel.CANCELLABLE,
        notice=_cancel_notice(request.query_params.get("cancel", "")),
    )


def _cancel_notice(status: str) -> str:
    """What the cancel form's redirect says (a status name only: nothing to spoof)."""
    if status == "cancelled":
        return "cancelled: this message will not be sent"
    return f"not cancellable: the message is {status}" if status in STATUSES else ""


def mail_body(html: str | None) -> Response[str]:
    return Response(
        html or "<p>(no HTML part)</p>",
        media_type="text/html",
        headers={"Content-Security-Policy": mailview.MAIL_CSP, "X-Content-Type-Options": "nosniff"},
    )


@get("/messages/{message_id:str}/body")
async def message_body(rt: Rt, message_id: FromPath[str], session: Session) -> Response[str]:
    need(session, "read")
    mail = mailview.rendered_mail(await rt.bus.history(messages.known_id(message_id)))
    return mail_body(mail.html if mail else None)


@post("/messages/{message_id:str}/resend")
async def resend(rt: Rt, form: Form, message_id: FromPath[str], session: Session) -> Redirect:
    need(session, "send")
    accepted = await sending.resend(rt, message_id, rerender=form.get("rerender") == "on")
    return Redirect(f"/console/messages/{accepted.id}")


@post("/messages/{message_id:str}/cancel")
async def cancel_message(
    rt: Rt, form: Form, message_id: FromPath[str], session: Session
) -> Redirect:
    """The API's cancel (services.api.scheduling), its answer shown on the page."""
    need(session, "send")
    reason = str(form.get("reason") or "cancelled in the console")[:500]
    command = CancelCommand(message_id=messages.known_id(message_id), reason=reason)
    change = await scheduling.run(rt, message_id, lambda h: cancel.decide(command, h))
    if change.refused == "not-found":
        raise Problem(404, "not-found", change.detail)
    return Redirect(f"/console/messages/{message_id}?cancel={change.status}")


@get("/capture")
async def capture_list(rt: Rt, session: Session) -> Template:
    need(session, "read")
    folder = rt.settings.data_dir.resolve() / "capture"
    return page("capture.html", session, mails=inbox.list_captured(folder), folder=folder)


def _captured(rt: Runtime, name: str) -> tuple[bytes, dict[str, Any]]:
    found = inbox.read_captured(rt.settings.data_dir.resolve() / "capture", name)
    if found is None:
        raise Problem(404, "not-found", f"no captured mail {name!r}")
    return found


@get("/capture/{name:str}")
async def capture_one(rt: Rt, name: FromPath[str], session: Session) -> Template:
    need(session, "read")
    data, envelope = _captured(rt, name)
    return page(
        "captured.html",
        session,
        name=name,
        envelope=envelope,
        mail=mailview.view_of(data),
        body_url=f"/console/capture/{name}/body",
    )


@get("/capture/{name:str}/body")
async def capture_body(rt: Rt, name: FromPath[str], session: Session) -> Response[str]:
    need(session, "read")
    return mail_body(mailview.view_of(_captured(rt, name)[0]).html)


@get("/suppressions")
async def suppression_list(rt: Rt, request: Req, session: Session) -> Template:
    need(session, "read")
    address = request.query_params.get("address", "").strip() or None
    found = await suppressions.find_suppressions(
        rt, address, None, 100, request.query_params.get("cursor") or None
    )
    return page(
        "suppressions.html",
        session,
        page=found,
        address=address or "",
        notice=request.query_params.get("notice", ""),
    )


@post("/suppressions")
async def suppression_add(rt: Rt, form: Form, session: Session) -> Redirect:
    need(session, "send")
    try:
        command = SuppressCommand(
            address=form.get("address", ""),
            scope=form.get("scope", ""),
            reason=form.get("reason") or "manual",
        )
    except ValidationError as exc:
        raise Problem(400, "invalid-request", errors_of(exc)) from None
    await suppressions.suppress(rt, command)
    return Redirect(f"/console/suppressions?notice=suppressed+{command.address}")


@post("/suppressions/lift")
async def suppression_lift(rt: Rt, form: Form, session: Session) -> Redirect:
    need(session, "admin")
    lifted = await suppressions.lift(rt, form.get("address", ""), form.get("scope", ""))
    return Redirect(f"/console/suppressions?notice=lifted+{lifted.address}")


@get("/stats")
async def stats_page(rt: Rt, request: Req, session: Session) -> Template:
    need(session, "read")
    since, until = request.query_params.get("since", ""), request.query_params.get("until", "")
    found = await stats.compute_stats(
        rt, messages.when(since, "since"), messages.when(until, "until")
    )
    return page(
        "stats.html",
        session,
        stats=found,
        since=since,
        until=until,
        per_day=charts.per_day(found.daily),
        per_template=charts.per_template(found.daily),
    )


@get("/templates")
async def template_list(rt: Rt, session: Session) -> Template:
    need(session, "read")
    return page("templates.html", session, templates=list(rt.templates.values()))


@post("/templates/{name:str}/preview")
async def template_preview(
    rt: Rt, form: Form, name: FromPath[str], session: Session
) -> Response[str]:
    need(session, "read")
    try:
        variables = json.loads(form.get("vars") or "{}")
    except ValueError as exc:
        return mail_body(f"<p>vars: not JSON ({exc})</p>")
    if not isinstance(variables, dict):
        return mail_body("<p>vars: a JSON object is expected</p>")
    try:
        preview = templates.render_preview(rt, name, variables)
    except Problem as exc:
        return mail_body(f"<p>{escape(exc.detail)}</p>")
    return mail_body(preview.html or f"<pre>{escape(preview.text or '')}</pre>")


@get("/keys")
async def key_list(rt: Rt, session: Session) -> Template:
    need(session, "admin")
    async with rt.pool.connection() as conn:
        found = await keys.list_keys(conn)
    return page("keys.html", session, keys=found, scopes=keys.SCOPES, created=None)


@post("/keys")
async def key_create(rt: Rt, form: Form, session: Session) -> Template:
    need(session, "admin")
    chosen = [s for s in keys.SCOPES if form.get(f"scope_{s}") == "on"]
    try:
        scopes = keys.parse_scopes(chosen)
    except ValueError as exc:
        raise Problem(400, "invalid-request", str(exc)) from None
    async with rt.pool.connection() as conn:
        key, secret = await keys.create_key(conn, scopes, str(form.get("name", ""))[:100])
        found = await keys.list_keys(conn)
    return page("keys.html", session, keys=found, scopes=keys.SCOPES, created=(key, secret))


@post("/keys/{key_id:str}/revoke")
async def key_revoke(rt: Rt, form: Form, key_id: FromPath[str], session: Session) -> Redirect:
    need(session, "admin")  # `form`: the CSRF token is checked before this runs
    async with rt.pool.connection() as conn:
        await keys.revoke_key(conn, key_id)
    return Redirect("/console/keys")


ROUTES = [
    home,
    message_list,
    message_page,
    message_body,
    resend,
    cancel_message,
    capture_list,
    capture_one,
    capture_body,
    suppression_list,
    suppression_add,
    suppression_lift,
    stats_page,
    template_list,
    template_preview,
    key_list,
    key_create,
    key_revoke,
]
