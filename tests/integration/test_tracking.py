"""Tracking, one-click unsubscribe and action tokens over real servers: mail goes out
through NATS, the services and the SMTP sink; links are followed over HTTP against
the real API (and the public-only app)."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
from nats.js import JetStreamContext

from services.api.app import create_app, create_public_app
from services.api.server import ApiServer
from services.capture import CaptureSink
from shared.events import Clicked, Opened, Unsubscribed
from shared.settings import Settings
from shared.tokens import KeyRing, action_url, click_token, load_key_ring, open_token
from tests.conftest import Pipeline, Projector
from tests.eventlog_reader import read_all, wait_for_any, wait_for_event
from tests.integration.test_api_support import Api, assert_problem, eventually

CLICK = re.compile(r'href="(http://127\.0\.0\.1:\d+/t/c/[^"]+)"')
PIXEL = re.compile(r'<img src="(http://127\.0\.0\.1:\d+/t/o/[^"]+)" width="1" height="1" alt="">')
HTML = (
    "<html><body><p>News!</p>"
    '<a href="https://example.com/article?id=7&amp;ref=mail">read</a> '
    '<a href="mailto:editor@example.com">write</a> '
    '<a href="#top">top</a> '
    '<a data-jetpost-notrack href="https://example.com/private">private</a>'
    "</body></html>"
)
RESET_TEMPLATE = "<p><a href=\"{{ signed_url(base, 'reset', user, ttl) }}\">Reset</a></p>"


@pytest.fixture
async def api(
    settings: Settings,
    database_url: str,
    js: JetStreamContext,
    tmp_path: Path,
) -> AsyncIterator[Api]:
    """The API bound first, so the renderer's links can point at it; then the services."""
    templates = tmp_path / "templates"
    (templates / "reset").mkdir(parents=True)
    (templates / "reset" / "subject.j2").write_text("Reset your password")
    (templates / "reset" / "html.j2").write_text(RESET_TEMPLATE)
    app_settings = settings.model_copy(
        update={"database_url": database_url, "api_timeout": 2.0, "api_key_cache_ttl": 0.0,
                "template_dir": templates}
    )  # fmt: skip
    server = ApiServer(create_app(app_settings), "127.0.0.1", 0)
    pipeline = Pipeline(app_settings)
    await pipeline.start(public_url=server.url)
    await server.start()
    client = httpx.AsyncClient(base_url=server.url, timeout=15)
    yield Api(server.url, client, app_settings, database_url)
    await client.aclose()
    await server.stop()
    await pipeline.stop()


async def send(api: Api, js: JetStreamContext, sink: CaptureSink, **command: Any) -> EmailMessage:
    """Send through the API; the mail as it reached the SMTP sink."""
    before = len(sink.received)
    response = await api.client.post("/v1/messages", json=command, headers=await api.as_("send"))
    assert response.status_code == 202, response.text
    await wait_for_event(js, response.json()["id"], "delivered")
    mail = (await sink.wait_for(before + 1, timeout=10))[before]
    parsed = email.message_from_bytes(mail.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def html_of(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def tampered(url: str) -> str:
    """The same link with one character of the token's payload changed."""
    head, _, token = url.rpartition("/")
    version, body, mac = token.split(".")
    body = body[:5] + ("A" if body[5] != "A" else "B") + body[6:]
    return f"{head}/{version}.{body}.{mac}"


async def count(js: JetStreamContext, event_type: str) -> int:
    return len(await read_all(js, f"mail.evt.*.{event_type}"))


async def test_click_tracking_redirects_only_to_signed_urls(
    api: Api, js: JetStreamContext, sink: CaptureSink
) -> None:
    mail = await send(
        api, js, sink, to="ada@example.org", subject="News", html=HTML,
        track={"clicks": True, "opens": True},
    )  # fmt: skip
    html = html_of(mail)
    [link] = CLICK.findall(html)
    assert "https://example.com/article" not in html
    for kept in ('href="mailto:editor@example.com"', 'href="#top"', "https://example.com/private"):
        assert kept in html
    assert PIXEL.search(html) and html.index("<img") < html.index("</body>")
    text = mail.get_body(preferencelist=("plain",))
    assert text is not None and "https://example.com/article?id=7&ref=mail" in text.get_content()

    headers = {"User-Agent": "jetpost-test/1.0"}
    for _ in range(2):  # the repeat within the window is counted, not appended
        hit = await api.client.get(link, headers=headers, follow_redirects=False)
        assert hit.status_code == 302, hit.text
        assert hit.headers["location"] == "https://example.com/article?id=7&ref=mail"
        assert "no-store" in hit.headers["cache-control"]
    clicks = await read_all(js, "mail.evt.*.clicked")
    assert len(clicks) == 1 and all(isinstance(c, Clicked) for c in clicks)
    first = clicks[0]
    assert isinstance(first, Clicked)
    assert first.url == "https://example.com/article?id=7&ref=mail"
    assert first.user_agent == "jetpost-test/1.0"
    assert first.message_id == mail["X-Jetpost-Message-Id"]

    message_id = first.message_id
    foreign = KeyRing(["an-attackers-own-key-000"])
    refused = [
        tampered(link),
        f"/t/c/{click_token(foreign, message_id, 'https://evil.example/')}",
        f"/t/c/{click_token(foreign, 'no-such-message', 'https://evil.example/')}",
        "/t/c/v1.garbage.token",
        "/t/c/not-a-token",
    ]
    bodies = set()
    for bad in refused:
        response = await api.client.get(bad, follow_redirects=False)
        body = assert_problem(response, (400, 404))
        assert "location" not in response.headers
        bodies.add((response.status_code, body["detail"]))
    assert len(bodies) == 1  # nothing tells a known message id from an unknown one
    assert await count(js, "clicked") == 1


async def test_open_pixel_is_always_a_gif(
    api: Api, js: JetStreamContext, sink: CaptureSink
) -> None:
    mail = await send(
        api, js, sink, to="ada@example.org", subject="News", html=HTML, track={"opens": True}
    )
    html = html_of(mail)
    assert not CLICK.search(html)  # opens only: links untouched
    match = PIXEL.search(html)
    assert match is not None
    good = await api.client.get(match.group(1), headers={"User-Agent": "MailClient/2"})
    foreign = open_token(KeyRing(["an-attackers-own-key-000"]), mail["X-Jetpost-Message-Id"])
    bad = [tampered(match.group(1)), f"/t/o/{foreign}", "/t/o/nonsense", "/t/o/a/b/c"]
    responses = [good, *[await api.client.get(url) for url in bad]]
    for response in responses:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/gif"
        assert "no-store" in response.headers["cache-control"]
        gif = response.content
        assert gif[:6] == b"GIF89a" and gif[-1:] == b";"
        assert int.from_bytes(gif[6:8], "little") == int.from_bytes(gif[8:10], "little") == 1
    assert len({r.content for r in responses}) == 1

    [opened] = await read_all(js, "mail.evt.*.opened")  # the good token only
    assert isinstance(opened, Opened)
    assert (opened.message_id, opened.user_agent) == (mail["X-Jetpost-Message-Id"], "MailClient/2")


async def test_one_click_unsubscribe_suppresses_once(
    api: Api, js: JetStreamContext, sink: CaptureSink, projector: Projector
) -> None:
    mail = await send(
        api, js, sink, to="Ada <Ada@Example.org>", subject="Weekly", html=HTML,
        tags=["newsletter", "weekly"],
    )  # fmt: skip
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    raw = sink.received[-1].data  # as it went over the wire
    raw_header = raw.split(b"\r\nList-Unsubscribe: ", 1)[1].split(b"\r\n")[0]
    assert raw_header.startswith(b"<http://127.0.0.1:")  # a URI, never RFC 2047-encoded
    [url] = re.findall(r"<(http://[^>]+/u/[^>]+)>", str(mail["List-Unsubscribe"]))
    message_id = mail["X-Jetpost-Message-Id"]

    page = await api.client.get(url)  # a link scanner: sees a page, unsubscribes no one
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'method="post"' in page.text and "ada@example.org" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert_problem(await api.client.get(f"/v1/messages/{message_id}"), 401)  # keys still needed

    form = {"content-type": "application/x-www-form-urlencoded"}
    bad = await api.client.post(tampered(url), content=b"List-Unsubscribe=One-Click", headers=form)
    assert bad.status_code in (400, 404)
    first = await api.client.post(url, content=b"List-Unsubscribe=One-Click", headers=form)
    assert first.status_code == 200, first.text
    assert "location" not in first.headers and "set-cookie" not in first.headers
    event = await wait_for_event(js, message_id, "unsubscribed")
    assert isinstance(event, Unsubscribed)
    assert (event.recipient, event.scope) == ("ada@example.org", "newsletter")

    async def suppressed() -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(api.database_url) as conn:
            cur = await conn.execute(
                "SELECT address, scope, reason FROM suppressions WHERE address = %s",
                ("ada@example.org",),
            )
            return await cur.fetchall()

    assert await eventually(suppressed, "the suppression") == [
        ("ada@example.org", "newsletter", "unsubscribed")
    ]
    listed = await api.client.get(
        "/v1/suppressions", params={"address": "ada@example.org"}, headers=await api.as_("read")
    )
    assert [i["scope"] for i in listed.json()["items"]] == ["newsletter"]

    again = await api.client.post(url)  # an empty body is a one-click request too
    assert again.status_code == 200
    await projector.caught_up(js)
    assert await count(js, "unsubscribed") == 1
    assert await count(js, "suppression_added") == 1
    assert await suppressed() == [("ada@example.org", "newsletter", "unsubscribed")]

    # the next newsletter to her is `suppressed`, and nothing is sent
    sender = await api.as_("send")
    weekly = {"to": "ada@example.org", "subject": "Weekly", "text": "news", "tags": ["newsletter"]}
    nxt = await api.client.post("/v1/messages", headers=sender, json=weekly)
    assert nxt.status_code == 202, nxt.text
    blocked = await wait_for_any(js, nxt.json()["id"], ("suppressed", "delivered"))
    assert blocked.type == "suppressed"
    added = await read_all(js, "mail.evt.*.suppression_added")
    assert [(getattr(e, "source", ""), getattr(e, "cause_message_id", "")) for e in added] == [
        ("unsubscribe", message_id)
    ]

    untagged = await send(api, js, sink, to="bob@example.org", subject="Receipt", text="Thanks")
    assert untagged["List-Unsubscribe"] is None  # transactional mail: no list to leave


async def test_action_tokens_verify_expire_and_refuse_tampering(
    api: Api, js: JetStreamContext, sink: CaptureSink
) -> None:
    mail = await send(
        api, js, sink, to="ada@example.org", template="reset",
        vars={"base": "https://app.example.com/reset", "user": "user-42", "ttl": 3600},
    )  # fmt: skip
    href = re.search(r'href="([^"]+)"', html_of(mail))
    assert href is not None and href.group(1).startswith("https://app.example.com/reset?token=")
    token = parse_qs(urlsplit(href.group(1).replace("&amp;", "&")).query)["token"][0]

    reader = await api.as_("read")
    verify = "/v1/tokens/verify"
    ok = await api.client.post(verify, json={"token": token, "action": "reset"}, headers=reader)
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["valid"] is True and body["subject"] == "user-42"
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(minutes=50) < expires - datetime.now(UTC) <= timedelta(hours=1)

    keys = load_key_ring(api.settings)
    past = datetime.now(UTC) - timedelta(seconds=5)
    expired_url = action_url(keys, "https://app.example.com/r", "reset", "user-42", expires_at=past)
    expired = parse_qs(urlsplit(expired_url).query)["token"][0]
    gone = await api.client.post(verify, json={"token": expired, "action": "reset"}, headers=reader)
    assert assert_problem(gone, 410)["type"].endswith("expired-token")

    changed = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    for payload in (
        {"token": changed, "action": "reset"},
        {"token": token, "action": "activate"},
        {"token": "v1.nope.nope", "action": "reset"},
    ):
        refused = await api.client.post(verify, json=payload, headers=reader)
        assert assert_problem(refused, 400)["type"].endswith("invalid-token")
    assert_problem(await api.client.post(verify, json={"token": token, "action": "reset"}), 401)
    no_read = await api.as_("send")
    assert_problem(
        await api.client.post(verify, json={"token": token, "action": "reset"}, headers=no_read),
        403,
    )
    assert_problem(await api.client.post(verify, json={"token": token}, headers=reader), 400)


async def test_public_app_serves_only_the_links(
    settings: Settings, js: JetStreamContext, tmp_path: Path
) -> None:
    """`jetpost run public`'s app: tracking and unsubscribe over NATS alone, no keyed API."""
    server = ApiServer(create_public_app(settings), "127.0.0.1", 0)
    url = await server.start()
    keys = load_key_ring(settings)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=15) as client:
            hit = await client.get(f"/t/c/{click_token(keys, 'msg-1', 'https://example.com/')}")
            assert hit.status_code == 302 and hit.headers["location"] == "https://example.com/"
            pixel = await client.get(f"/t/o/{open_token(keys, 'msg-1')}")
            assert pixel.content.startswith(b"GIF89a")
            for path in ("/v1/messages", "/schema/openapi.json", "/v1/tokens/verify"):
                assert (await client.get(path)).status_code == 404
            assert (await client.get("/healthz")).status_code == 200
        assert [e.type for e in await read_all(js, "mail.evt.msg-1.>")] == ["clicked", "opened"]
    finally:
        await server.stop()
