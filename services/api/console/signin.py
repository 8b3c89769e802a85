"""Sign-in and sign-out. The sign-in form has no session yet, so its CSRF token is a
double-submit one: a random value in its own SameSite=Strict cookie and in the form."""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Request, get, post
from litestar.response import Redirect, Template

from services.api.console.session import (
    COOKIE,
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    TTL_HOURS,
    BadCsrf,
    Rt,
    Session,
    close_session,
    cookie,
    open_session,
    same_token,
)
from services.api.runtime import Runtime


def _form(rt: Runtime, error: str = "", status: int = 200) -> Template:
    token = secrets.token_urlsafe(24)
    return Template(
        media_type="text/html",
        template_name="login.html",
        context={"csrf": token, "error": error},
        status_code=status,
        cookies=[cookie(rt, LOGIN_CSRF_COOKIE, token, 3600)],
    )


@get("/login")
async def login_form(rt: Rt) -> Template:
    return _form(rt)


@post("/login")
async def login(rt: Rt, request: Request[Any, Any, Any]) -> Any:
    form = await request.form()
    if not same_token(request.cookies.get(LOGIN_CSRF_COOKIE, ""), form.get(CSRF_FIELD)):
        raise BadCsrf
    opened = await open_session(rt, str(form.get("key", "")))
    if opened is None:
        return _form(rt, "unknown or revoked API key", 401)
    token, _ = opened
    return Redirect(
        "/console/messages",
        cookies=[cookie(rt, COOKIE, token, TTL_HOURS * 3600), cookie(rt, LOGIN_CSRF_COOKIE, "", 0)],
    )


@post("/logout")
async def logout(
    rt: Rt,
    request: Request[Any, Any, Any],
    session: Session,
) -> Redirect:
    form = await request.form()
    if not same_token(session.csrf, form.get(CSRF_FIELD)):
        raise BadCsrf
    await close_session(rt, session)
    return Redirect("/console/login", cookies=[cookie(rt, COOKIE, "", 0)])


ROUTES = [login_form, login, logout]
