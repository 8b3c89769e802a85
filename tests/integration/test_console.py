"""The console over HTTP (no browser): sessions are server-side and die with their key
or at sign-out, every form needs the CSRF token, scopes apply, and the mail is served
under a strict CSP. The browser tests (tests/browser) drive the pages themselves."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from nats.js import JetStreamContext

from tests.conftest import Projector
from tests.eventlog_reader import types_of, wait_for_event
from tests.integration.test_api_support import Api, api_fixture  # noqa: F401


async def sign_in(api: Api, key: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=api.url, timeout=15)
    form = await client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, form.text
    done = await client.post("/console/login", data={"csrf": csrf[1], "key": key})
    assert done.status_code in (302, 303), (done.status_code, done.text)
    cookie = done.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Path=/console" in cookie
    assert "samesite=strict" in cookie.lower()
    return client


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'data-csrf="([^"]+)"', page.text)
    assert found, page.text
    return found[1]


async def test_sign_in_csrf_scopes_and_sign_out(api: Api) -> None:
    anonymous = await api.client.get("/console/messages")
    assert anonymous.status_code in (302, 303) and anonymous.headers["location"].endswith("/login")
    login = await api.client.get("/console/login")
    bad = await api.client.post("/console/login", data={"csrf": "forged", "key": "x"})
    assert bad.status_code == 403 and login.status_code == 200
    wrong = await sign_in_fails(api, "jp_unknown")
    assert "unknown or revoked API key" in wrong

    reader = await sign_in(api, await api.key("read"))
    page = await reader.get("/console/messages")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    token = csrf_of(page)
    # A reader may look but not lift, and nobody posts without the token.
    assert (
        await reader.post("/console/suppressions/lift", data={"address": "a@b.c"})
    ).status_code == 403
    lifted = await reader.post(
        "/console/suppressions/lift", data={"address": "a@b.c", "csrf": token}
    )
    assert lifted.status_code == 403 and "&#39;admin&#39; scope" in lifted.text
    assert (await reader.get("/console/keys")).status_code == 403

    await reader.post("/console/logout", data={"csrf": token})
    after = await reader.get("/console/messages")
    assert after.status_code in (302, 303)
    await reader.aclose()


async def sign_in_fails(api: Api, key: str) -> str:
    async with httpx.AsyncClient(base_url=api.url, timeout=15) as client:
        form = await client.get("/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        response = await client.post("/console/login", data={"csrf": csrf[1], "key": key})
        assert response.status_code == 401
        return response.text


async def test_a_revoked_key_ends_its_session(api: Api) -> None:
    key = await api.key("admin", name="soon-revoked")
    client = await sign_in(api, key)
    assert (await client.get("/console/messages")).status_code == 200
    async with await psycopg.AsyncConnection.connect(api.database_url, autocommit=True) as conn:
        await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE name = 'soon-revoked'")
    assert (await client.get("/console/messages")).status_code in (302, 303)
    await client.aclose()


async def test_the_mail_is_served_sandboxed(
    api: Api, projector: Projector, js: JetStreamContext
) -> None:
    sent = await api.client.post(
        "/v1/messages", headers=await api.as_("send"),
        json={"to": "eve@example.com", "subject": "Hi", "html": "<p>Hi<script>x()</script></p>"},
    )  # fmt: skip
    message_id = sent.json()["id"]
    await wait_for_event(js, message_id, "delivered")
    await projector.caught_up(js)
    client = await sign_in(api, await api.key("read"))
    page = await client.get(f"/console/messages/{message_id}")
    assert page.status_code == 200 and 'sandbox src="/console/messages/' in page.text
    assert "Content-Type: multipart/alternative" in page.text  # the raw MIME source
    body = await client.get(f"/console/messages/{message_id}/body")
    csp = body.headers["content-security-policy"]
    assert "default-src 'none'" in csp and csp.endswith("sandbox")
    assert "<p>Hi" in body.text
    await client.aclose()


async def test_cancel_from_the_message_page_needs_the_csrf_token(
    api: Api, projector: Projector, js: JetStreamContext
) -> None:
    send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    ids = []
    for body in ({"to": "frank@example.com", "subject": "Later", "text": "hi", "send_at": send_at},
                 {"to": "gina@example.com", "subject": "Now", "text": "hi"}):  # fmt: skip
        sent = await api.client.post("/v1/messages", headers=await api.as_("send"), json=body)
        ids.append(sent.json()["id"])
    later, now = ids
    await wait_for_event(js, later, "scheduled")
    await wait_for_event(js, now, "delivered")
    await projector.caught_up(js)
    client = await sign_in(api, await api.key("send", "read"))
    page = await client.get(f"/console/messages/{later}")
    cancel = f"/console/messages/{later}/cancel"
    assert f'action="{cancel}"' in page.text

    # A cross-site form: the browser sends no SameSite=Strict cookie, and even with the
    # cookie, no token: refused, nothing changed.
    async with httpx.AsyncClient(base_url=api.url, timeout=15) as elsewhere:
        outside = await elsewhere.post(cancel, data={}, headers={"Origin": "https://evil.test"})
    assert outside.status_code in (302, 303) and outside.headers["location"].endswith("/login")
    forged = await client.post(cancel, data={"csrf": "forged"})
    bare = await client.post(cancel, data={}, headers={"Origin": "https://evil.test"})
    assert forged.status_code == bare.status_code == 403
    assert "did not come from this console" in bare.text
    assert await types_of(js, later) == ["scheduled"]

    done = await client.post(cancel, data={"csrf": csrf_of(page)})
    assert done.status_code in (302, 303), done.text
    shown = await client.get(done.headers["location"])
    assert "cancelled: this message will not be sent" in shown.text
    assert f'action="{cancel}"' not in shown.text  # no longer cancellable
    assert await types_of(js, later) == ["scheduled", "cancelled"]

    # Delivered: no button; a form from an old tab is answered with the status.
    page = await client.get(f"/console/messages/{now}")
    assert f'action="/console/messages/{now}/cancel"' not in page.text
    late = await client.post(f"/console/messages/{now}/cancel", data={"csrf": csrf_of(page)})
    shown = await client.get(late.headers["location"])
    assert "not cancellable: the message is delivered" in shown.text
    assert "cancelled" not in await types_of(js, now)
    await client.aclose()
