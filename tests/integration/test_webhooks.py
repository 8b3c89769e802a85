"""POST /v1/webhooks/<provider> over real NATS and Postgres: generic (HMAC-signed) and
SES-via-SNS (signed by a key and self-signed certificate of the test's own, served
by httpx.MockTransport). Duplicated and reordered webhooks change nothing twice,
checked by counting MAIL_EVT and reading the messages read model."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from litestar import Litestar
from nats.js import JetStreamContext
from psycopg.rows import dict_row
from pydantic import SecretStr

from services.api.app import create_app
from services.api.server import ApiServer
from services.api.webhooks import SEEN_BUCKET
from services.capture import CaptureSink
from shared.embedded import EmbeddedNats
from shared.eventlog import append
from shared.events import Accepted, Bounced, Complained, Envelope, FeedbackUnmatched
from shared.mailbox import Mailbox
from shared.settings import Settings
from shared.subjects import CMD_SEND, CMD_STREAM, EVT_STREAM
from tests.conftest import Pipeline, Projector
from tests.eventlog_reader import history, read_all, wait_for_event
from tests.integration.test_api_support import assert_problem
from tests.sns_signer import TOPIC, SnsSigner

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
SECRET = "whsec_test_5f0a1b2c3d4e"


@dataclass
class Hooks:
    client: httpx.AsyncClient
    signer: SnsSigner
    app: Litestar
    publishes: list[str] = field(default_factory=list)  # events the API published

    async def generic(
        self, body: dict[str, Any] | bytes, *, secret: str = SECRET, **headers: str
    ) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        sent = {"X-Jetpost-Signature": f"sha256={digest}", "content-type": "application/json"}
        return await self.client.post("/v1/webhooks/generic", content=raw,
                                      headers={**sent, **headers})  # fmt: skip

    async def sns(self, message: dict[str, Any], **headers: str) -> httpx.Response:
        sent = {"x-amz-sns-message-type": message["Type"], "x-amz-sns-topic-arn": TOPIC,
                "content-type": "text/plain; charset=UTF-8"}  # fmt: skip
        return await self.client.post("/v1/webhooks/ses", content=json.dumps(message).encode(),
                                      headers={**sent, **headers})  # fmt: skip


async def start_hooks(
    settings: Settings, database_url: str, **overrides: Any
) -> tuple[ApiServer, Hooks]:
    app_settings = settings.model_copy(update={
        "database_url": database_url, "api_timeout": 2.0, "webhook_secret": SecretStr(SECRET),
        "sns_topic_arns": TOPIC, **overrides,
    })  # fmt: skip
    signer = SnsSigner.create()
    app = create_app(app_settings, webhook_http=signer.client())
    server = ApiServer(app, "127.0.0.1", 0)
    url = await server.start()
    hooks = Hooks(httpx.AsyncClient(base_url=url, timeout=15), signer, app)
    js = app.state["runtime"].bus.js
    publish = js.publish

    async def counted(subject: str, *args: Any, **kwargs: Any) -> Any:
        if subject.startswith("mail.evt."):  # not the KV bucket's own writes
            hooks.publishes.append(subject)
        return await publish(subject, *args, **kwargs)

    js.publish = counted
    return server, hooks


async def stop_hooks(server: ApiServer, hooks: Hooks) -> None:
    await hooks.client.aclose()
    await server.stop()
    await hooks.app.state["webhooks"].http.aclose()


@pytest.fixture
async def hooks(
    settings: Settings, js: JetStreamContext, database_url: str
) -> AsyncIterator[Hooks]:
    server, running = await start_hooks(settings, database_url)
    yield running
    await stop_hooks(server, running)


async def accept(js: JetStreamContext, message_id: str, *to: str) -> None:
    """A message as intake records it (no sender runs: nothing else happens to it)."""
    rcpts = tuple(Mailbox(email=a) for a in to or ("alice@example.com",))
    envelope = Envelope(sender=Mailbox(email="noreply@jetpost.test"), to=rcpts)
    await append(js, Accepted(event_id=f"acc-{message_id}", message_id=message_id,
                              correlation_id=f"corr-{message_id}", envelope=envelope,
                              subject="Hello"))  # fmt: skip


async def count(js: JetStreamContext, subject: str = "mail.evt.>") -> int:
    info = await js.stream_info(EVT_STREAM, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


async def rows(database_url: str, *ids: str) -> dict[str, dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT * FROM messages WHERE id = ANY(%s)", (list(ids),))
        return {r["id"]: r for r in await cur.fetchall()}


def outcomes(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["outcome"] for r in response.json()["results"]]


def ses(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def generic_event(event_id: str, kind: str, message_id: str, **more: Any) -> dict[str, Any]:
    return {"id": event_id, "type": kind, "message_id": message_id,
            "recipient": "alice@example.com", **more}  # fmt: skip


async def test_generic_batch_is_recorded_once(
    hooks: Hooks, js: JetStreamContext, projector: Projector, database_url: str
) -> None:
    for mid in ("gen-1", "gen-2", "gen-3"):
        await accept(js, mid)
    batch = (FIXTURES / "generic_batch.json").read_bytes()
    assert outcomes(await hooks.generic(batch)) == ["recorded"] * 3
    assert len(hooks.publishes) == 3
    before = await count(js)

    # Delivered again (the provider missed our 200): the same events, nothing appended,
    # and nothing even published: the seen bucket answers, not the duplicate window.
    again = await hooks.generic(batch)
    assert outcomes(again) == ["duplicate"] * 3
    changed = json.loads(batch)["events"][0] | {"diagnostic": "550 retried with other text"}
    assert outcomes(await hooks.generic({"events": [changed]})) == ["duplicate"]
    assert len(hooks.publishes) == 3 and await count(js) == before

    (bounce,) = await read_all(js, "mail.evt.gen-1.bounced")
    assert isinstance(bounce, Bounced)
    assert (bounce.kind, bounce.status, bounce.smtp_code, bounce.source, bounce.provider) == (
        "hard", "5.1.1", 550, "webhook", "generic")  # fmt: skip
    assert (bounce.recipients, bounce.correlation_id) == (("alice@example.com",), "corr-gen-1")
    assert bounce.provider_event_id == "evt_01HX2A3B4C"
    assert again.json()["results"][0]["events"] == [bounce.event_id]
    (complaint,) = await read_all(js, "mail.evt.gen-2.complained")
    assert isinstance(complaint, Complained) and complaint.source == "webhook"

    await projector.caught_up(js)
    found = await rows(database_url, "gen-1", "gen-2", "gen-3")
    assert {k: r["status"] for k, r in found.items()} == {
        "gen-1": "bounced", "gen-2": "complained", "gen-3": "delivered"}  # fmt: skip
    seen = await js.key_value(SEEN_BUCKET)
    assert len(await seen.keys()) == 3


async def test_reordered_webhooks_change_nothing_twice(
    hooks: Hooks, js: JetStreamContext, projector: Projector, database_url: str
) -> None:
    await accept(js, "in-order")
    await accept(js, "reordered")
    delivered_at, bounced_at = "2025-05-06T09:00:00Z", "2025-05-06T09:05:00Z"

    def pair(mid: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return (generic_event(f"{mid}-d", "delivery", mid, timestamp=delivered_at),
                generic_event(f"{mid}-b", "bounce", mid, bounce_type="hard", status="5.1.1",
                              timestamp=bounced_at))  # fmt: skip

    delivery, bounce = pair("in-order")
    assert outcomes(await hooks.generic({"events": [delivery, bounce]})) == ["recorded"] * 2
    late_delivery, early_bounce = pair("reordered")
    assert outcomes(await hooks.generic({"events": [early_bounce]})) == ["recorded"]
    # The delivery report arrives after the bounce: the log has an outcome already.
    assert outcomes(await hooks.generic({"events": [late_delivery]})) == ["unchanged"]
    assert [e.type for e in await history(js, "in-order")] == ["accepted", "delivered", "bounced"]
    assert [e.type for e in await history(js, "reordered")] == ["accepted", "bounced"]

    await projector.caught_up(js)
    settled = await rows(database_url, "in-order", "reordered")
    assert {r["status"] for r in settled.values()} == {"bounced"}
    assert settled["reordered"]["delivered_at"] is None
    assert str(settled["in-order"]["bounced_at"]) == str(settled["reordered"]["bounced_at"])

    # Everything again, in another order, and one more delivery report of each: nothing.
    total, published = await count(js), len(hooks.publishes)
    replay = [bounce, late_delivery, delivery, early_bounce]
    assert outcomes(await hooks.generic({"events": replay})) == ["duplicate"] * 4
    more = [generic_event(f"{m}-d2", "delivery", m) for m in ("in-order", "reordered")]
    assert outcomes(await hooks.generic({"events": more})) == ["unchanged"] * 2
    assert (await count(js), len(hooks.publishes)) == (total, published)
    await projector.caught_up(js)
    assert await rows(database_url, "in-order", "reordered") == settled


async def test_generic_signature_is_required(hooks: Hooks, js: JetStreamContext) -> None:
    await accept(js, "sig-1")
    body = json.dumps({"events": [generic_event("e1", "complaint", "sig-1")]}).encode()
    good = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    other = hmac.new(SECRET.encode(), body + b" ", hashlib.sha256).hexdigest()
    attempts = [
        {},
        {"X-Jetpost-Signature": ""},
        {"X-Jetpost-Signature": good},  # without the scheme
        {"X-Jetpost-Signature": f"sha1={good}"},
        {"X-Jetpost-Signature": f"sha256={other}"},  # signs another body
        {"X-Jetpost-Signature": f"sha256={good[:-1]}{'1' if good[-1] == '0' else '0'}"},
        {"X-Jetpost-Signature": "sha256=" + "z" * 64},
    ]
    for headers in attempts:
        response = await hooks.client.post("/v1/webhooks/generic", content=body, headers=headers)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("HMAC-SHA256")
    wrong_secret = await hooks.generic(body, secret="not-the-secret")
    assert_problem(wrong_secret, 401)
    assert hooks.publishes == [] and await count(js) == 1
    uppercase = {"X-Jetpost-Signature": f"sha256={good.upper()}"}
    response = await hooks.client.post("/v1/webhooks/generic", content=body, headers=uppercase)
    assert outcomes(response) == ["recorded"]


async def test_bad_requests_are_4xx_problems(hooks: Hooks, js: JetStreamContext) -> None:
    assert_problem(await hooks.generic(b"{not json"), 400)
    assert_problem(await hooks.generic(b""), 400)
    assert_problem(await hooks.generic({"events": [{"id": "x", "type": "bounce"}]}), 400)
    assert_problem(await hooks.generic({"events": "all of them"}), 400)
    body = assert_problem(await hooks.client.post("/v1/webhooks/mailgun", content=b"{}"), 404)
    assert "generic, ses" in body["detail"]
    assert_problem(await hooks.client.get("/v1/webhooks/generic"), 405)
    assert_problem(await hooks.client.post("/v1/webhooks/ses", content=b"\x00\xff"), 400)
    assert_problem(await hooks.client.post("/v1/webhooks/ses", content=b'{"Type": 1}'), 400)
    # A signed SNS notification whose Message is not SES JSON.
    assert_problem(await hooks.sns(hooks.signer.notification("hello")), 400)
    assert hooks.publishes == [] and await count(js) == 0


async def test_unknown_messages_are_kept_as_unmatched(hooks: Hooks, js: JetStreamContext) -> None:
    stranger = generic_event("lost-1", "bounce", "never-sent", bounce_type="hard")
    assert outcomes(await hooks.generic({"events": [stranger]})) == ["unmatched"]
    foreign = ses("ses_complaint.json")
    foreign["mail"]["commonHeaders"]["messageId"] = "<abc@elsewhere.example>"
    assert outcomes(await hooks.sns(hooks.signer.notification(foreign))) == ["unmatched"]
    # Again: still one record each.
    assert outcomes(await hooks.generic({"events": [stranger]})) == ["duplicate"]
    assert outcomes(await hooks.sns(hooks.signer.notification(foreign))) == ["duplicate"]
    kept = await read_all(js, "mail.evt.*.feedback_unmatched")
    assert len(kept) == 2 and all(isinstance(e, FeedbackUnmatched) for e in kept)
    assert {e.kind for e in kept if isinstance(e, FeedbackUnmatched)} == {"webhook"}
    reasons = [e.reason for e in kept if isinstance(e, FeedbackUnmatched)]
    assert "never-sent not in the log" in reasons[0]
    assert await count(js) == 2


async def test_ses_feedback_on_a_sent_message(
    pipeline: Pipeline,
    sink: CaptureSink,
    hooks: Hooks,
    js: JetStreamContext,
    projector: Projector,
    database_url: str,
) -> None:
    command = {"to": "Alice <alice@example.com>", "template": "welcome",
               "vars": {"name": "Alice"}, "message_id": "ses-bounce-1"}  # fmt: skip
    await js.publish(CMD_SEND, json.dumps(command).encode(), stream=CMD_STREAM)
    await wait_for_event(js, "ses-bounce-1", "delivered")
    [mail] = await sink.wait_for(1, timeout=10)
    assert b"X-Jetpost-Message-Id: ses-bounce-1" in mail.data  # what SES hands back

    bounce = hooks.signer.notification(ses("ses_bounce_permanent.json"), version="2")
    assert outcomes(await hooks.sns(bounce)) == ["recorded"]
    (event,) = await read_all(js, "mail.evt.ses-bounce-1.bounced")
    assert isinstance(event, Bounced)
    assert (event.kind, event.status, event.smtp_code, event.source, event.recipients) == (
        "hard", "5.1.1", 550, "webhook", ("alice@example.com",))  # fmt: skip
    assert "User unknown" in event.response

    total = await count(js)
    # SNS retries the same notification; the same SES event comes through another
    # subscription with another MessageId; SES's delivery report arrives late.
    assert outcomes(await hooks.sns(bounce)) == ["duplicate"]
    resent = hooks.signer.notification(ses("ses_bounce_permanent.json"))
    assert outcomes(await hooks.sns(resent)) == ["duplicate"]
    assert outcomes(await hooks.sns(hooks.signer.notification(ses("ses_delivery.json")))) == [
        "unchanged"
    ]
    assert await count(js) == total

    await projector.caught_up(js)
    row = (await rows(database_url, "ses-bounce-1"))["ses-bounce-1"]
    assert (row["status"], row["last_error"]) == ("bounced", event.response)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT message_id FROM suppressions WHERE address = %s",
                                 ("alice@example.com",))  # fmt: skip
        assert await cur.fetchall() == [("ses-bounce-1",)]


async def test_ses_complaint_transient_bounce_and_ignored_types(
    hooks: Hooks, js: JetStreamContext
) -> None:
    await accept(js, "ses-complaint-1")
    await accept(js, "ses-soft-1", "Bob@Example.org", "carol@example.org")
    complaint = await hooks.sns(hooks.signer.notification(ses("ses_complaint.json")))
    assert outcomes(complaint) == ["recorded"]
    (event,) = await read_all(js, "mail.evt.ses-complaint-1.complained")
    assert isinstance(event, Complained)
    assert (event.recipient, event.source, event.correlation_id) == (
        "alice@example.com", "webhook", "corr-ses-complaint-1")  # fmt: skip

    soft = await hooks.sns(hooks.signer.notification(ses("ses_event_bounce_transient.json")))
    assert outcomes(soft) == ["recorded", "recorded"]
    bounces = await read_all(js, "mail.evt.ses-soft-1.bounced")
    assert sorted(b.recipients for b in bounces if isinstance(b, Bounced)) == [
        ("Bob@Example.org",), ("carol@example.org",)]  # fmt: skip
    assert {(b.kind, b.status) for b in bounces if isinstance(b, Bounced)} == {("soft", "4.2.2")}

    total = await count(js)
    opened = await hooks.sns(hooks.signer.notification(ses("ses_event_open.json")))
    assert outcomes(opened) == [] and "Open" in opened.json()["ignored"][0]
    assert await count(js) == total


async def test_sns_messages_that_do_not_prove_themselves(
    hooks: Hooks, js: JetStreamContext
) -> None:
    await accept(js, "ses-bounce-1")
    signer = hooks.signer
    good = signer.notification(ses("ses_bounce_permanent.json"))
    tampered = dict(good, Message=good["Message"].replace("Permanent", "Transient"))
    assert "forbidden" in assert_problem(await hooks.sns(tampered), 403)["type"]

    impostor = SnsSigner.create(host="sns.evil.s3.amazonaws.com")
    assert_problem(await hooks.sns(impostor.notification(ses("ses_bounce_permanent.json"))), 403)
    other_key = SnsSigner.create()  # right URL, wrong key
    assert_problem(await hooks.sns(other_key.notification(ses("ses_bounce_permanent.json"))), 403)
    own_topic = SnsSigner(signer.key, signer.cert_pem, topic="arn:aws:sns:eu-test-1:666:mine")
    refused = assert_problem(await hooks.sns(own_topic.notification({"x": 1})), 403)
    assert "not trusted" in refused["detail"]

    unsigned = {k: v for k, v in good.items() if k != "Signature"}
    assert_problem(await hooks.sns(unsigned), 400)
    wrong_type = await hooks.sns(good, **{"x-amz-sns-message-type": "SubscriptionConfirmation"})
    assert_problem(wrong_type, 400)
    assert all(r.url.host == signer.host for r in signer.requests)  # no foreign fetch
    assert hooks.publishes == [] and await count(js) == 1
    assert outcomes(await hooks.sns(good)) == ["recorded"]


async def test_subscription_confirmation_only_when_asked(
    settings: Settings, js: JetStreamContext, database_url: str
) -> None:
    for auto in (False, True):
        server, running = await start_hooks(settings, database_url, sns_auto_confirm=auto)
        try:
            response = await running.sns(running.signer.confirmation())
            assert response.status_code == 200, response.text
            assert response.json()["confirmed"] is auto
            visits = [r for r in running.signer.requests if r.url.params.get("Action")]
            assert len(visits) == int(auto)
            goodbye = await running.sns(running.signer.confirmation("UnsubscribeConfirmation"))
            assert goodbye.status_code == 200
        finally:
            await stop_hooks(server, running)
    assert await count(js) == 0


async def test_unconfigured_providers_refuse(
    settings: Settings, js: JetStreamContext, database_url: str
) -> None:
    server, running = await start_hooks(
        settings, database_url, webhook_secret=None, sns_topic_arns=""
    )
    try:
        generic = assert_problem(await running.generic({"events": []}), 403)
        assert "JETPOST_WEBHOOK_SECRET" in generic["detail"]
        sns = assert_problem(await running.sns(running.signer.notification({"x": 1})), 403)
        assert "JETPOST_SNS_TOPIC_ARNS" in sns["detail"]
    finally:
        await stop_hooks(server, running)


async def test_nats_down_is_503(
    settings: Settings, js: JetStreamContext, database_url: str, nats_server: EmbeddedNats
) -> None:
    await accept(js, "down-1")
    server, running = await start_hooks(settings, database_url)
    try:
        nats_server.stop()
        event = generic_event("down-e1", "complaint", "down-1")
        response = await running.generic({"events": [event]})
        assert "NATS" in assert_problem(response, 503)["detail"]
        assert response.headers["retry-after"]
        ses_down = await running.sns(running.signer.notification(ses("ses_complaint.json")))
        assert_problem(ses_down, 503)
    finally:
        await stop_hooks(server, running)
