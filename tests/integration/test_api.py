"""The HTTP API over real servers: sending, idempotency, keys and scopes, bad input,
NATS going away, templates, batches, `as_of` reads from the log, docs and health."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from datetime import timedelta
from typing import Any

import pytest
from nats.js import JetStreamContext

from services.capture import CaptureSink
from shared.embedded import EmbeddedNats
from shared.events import Accepted
from shared.settings import Settings
from shared.subjects import CMD_STREAM
from tests.conftest import JETPOST, Projector, with_database
from tests.eventlog_reader import history, read_all, wait_for_event
from tests.integration.test_api_support import (  # noqa: F401
    Api,
    api_fixture,
    assert_problem,
    eventually,
    start_api,
)


def welcome(name: str = "Alice", **extra: Any) -> dict[str, Any]:
    return {
        "to": f"{name} <{name.lower()}@example.com>",
        "template": "welcome",
        "vars": {"name": name},
        **extra,
    }


async def test_send_is_accepted_then_delivered(
    api: Api, js: JetStreamContext, sink: CaptureSink
) -> None:
    response = await api.client.post(
        "/v1/messages", json=welcome(tags=["signup"]), headers=await api.as_("send")
    )
    assert response.status_code == 202, response.text
    message_id = response.json()["id"]
    await wait_for_event(js, message_id, "delivered")
    [mail] = await sink.wait_for(1, timeout=10)
    assert list(mail.rcpt_tos) == ["alice@example.com"]
    assert f"<{message_id}@jetpost.test>".encode() in mail.data


async def test_idempotency_key_same_body_same_id_other_body_409(
    api: Api, js: JetStreamContext, sink: CaptureSink
) -> None:
    headers = {**await api.as_("send"), "Idempotency-Key": "signup-42"}
    first = await api.client.post("/v1/messages", json=welcome(), headers=headers)
    again = await api.client.post("/v1/messages", json=welcome(), headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    conflict = await api.client.post("/v1/messages", json=welcome("Mallory"), headers=headers)
    body = assert_problem(conflict, 409)
    assert body["message_id"] == first.json()["id"]
    # The key in the body is the same key.
    in_body = await api.client.post(
        "/v1/messages",
        json=welcome(idempotency_key="signup-42"),
        headers={"Authorization": headers["Authorization"]},
    )
    assert in_body.status_code == 202 and in_body.json() == first.json()

    await wait_for_event(js, first.json()["id"], "delivered")
    accepted = await read_all(js, "mail.evt.*.accepted")
    assert [e.message_id for e in accepted] == [first.json()["id"]]
    assert len(sink.received) == 1


async def test_keys_and_scopes(api: Api) -> None:
    missing = await api.client.get("/v1/templates")
    assert assert_problem(missing, 401)["detail"].startswith("an API key is required")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    unknown = await api.client.get("/v1/templates", headers={"Authorization": "Bearer jp_nope"})
    assert_problem(unknown, 401)
    basic = await api.client.get("/v1/templates", headers={"Authorization": "Basic eDp5"})
    assert_problem(basic, 401)

    reader, sender = await api.as_("read"), await api.as_("send")
    assert (await api.client.get("/v1/templates", headers=reader)).status_code == 200
    assert_problem(await api.client.get("/v1/templates", headers=sender), 403)
    assert_problem(await api.client.post("/v1/messages", json=welcome(), headers=reader), 403)
    # The scope is checked before the body is read: a reader learns nothing about it.
    assert_problem(await api.client.post("/v1/messages", content=b"{", headers=reader), 403)
    admin = await api.as_("admin")
    assert (await api.client.get("/v1/templates", headers=admin)).status_code == 200


async def test_keys_cli_creates_lists_and_revokes(api: Api) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETPOST_")}
    env["JETPOST_DATABASE_URL"] = api.database_url

    def jetpost(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [JETPOST, "keys", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    created = jetpost("create", "--scope", "send,read", "--name", "ci")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("jp_") and len(secret) > 40
    key_id = created.stderr.split()[1]
    listed = jetpost("list")
    assert key_id in listed.stdout and "read,send" in listed.stdout and secret not in listed.stdout
    assert jetpost("create", "--scope", "root").returncode != 0

    headers = {"Authorization": f"Bearer {secret}"}
    assert (await api.client.get("/v1/templates", headers=headers)).status_code == 200
    assert jetpost("revoke", key_id).returncode == 0
    assert jetpost("revoke", key_id).returncode == 1  # already revoked
    assert_problem(await api.client.get("/v1/templates", headers=headers), 401)


BAD_BODIES: list[tuple[bytes, int, str]] = [
    (b"{not json", 400, "malformed"),
    (b"[1, 2]", 400, ""),
    (b"", 400, "body is required"),
    (json.dumps({**welcome(), "colour": "red"}).encode(), 400, "colour"),
    (json.dumps({"to": 42, "subject": "s", "text": "t"}).encode(), 400, "to"),
    (json.dumps({**welcome(), "vars": "name=Alice"}).encode(), 400, "vars"),
    (
        json.dumps({"to": "not-an-address", "subject": "s", "text": "t"}).encode(),
        400,
        "invalid address",
    ),
    (
        json.dumps(
            {"to": "a@example.com", "subject": "hi\r\nBcc: v@example.com", "text": "t"}
        ).encode(),
        400,
        "line break",
    ),
    (
        json.dumps(
            {"to": "a@example.com\r\nBcc: v@example.com", "subject": "s", "text": "t"}
        ).encode(),
        400,
        "line break",
    ),
    (
        json.dumps(
            {
                "to": "a@example.com",
                "subject": "s",
                "text": "t",
                "headers": {"Bcc": "v@example.com"},
            }
        ).encode(),
        400,
        "set by jetpost",
    ),
    (json.dumps({"to": "a@example.com", "subject": "s"}).encode(), 400, "'html' or 'text'"),
    (json.dumps({"to": "a@example.com", "template": "no_such"}).encode(), 422, "unknown template"),
]


async def test_bad_bodies_are_4xx_problems_and_publish_nothing(
    api: Api, js: JetStreamContext
) -> None:
    headers = {**await api.as_("send"), "Content-Type": "application/json"}
    for body, status, detail in BAD_BODIES:
        response = await api.client.post("/v1/messages", content=body, headers=headers)
        problem = assert_problem(response, status)
        assert detail in problem["detail"], (body, problem)
    long_key = {**headers, "Idempotency-Key": "k" * 300}
    assert_problem(await api.client.post("/v1/messages", json=welcome(), headers=long_key), 400)
    both = {**headers, "Idempotency-Key": "a"}
    mismatch = await api.client.post(
        "/v1/messages", json=welcome(idempotency_key="b"), headers=both
    )
    assert_problem(mismatch, 422)
    for path in ("/v1/messages/batch", "/v1/suppressions", "/v1/messages/x/resend"):
        assert_problem(await api.client.post(path, content=b"{", headers=headers), 400)
    assert (await js.stream_info(CMD_STREAM)).state.messages == 0


async def test_nats_down_is_503_not_500(
    settings: Settings, js: JetStreamContext, database_url: str, nats_server: EmbeddedNats
) -> None:
    server, api = await start_api(settings, database_url)
    try:
        headers = await api.as_("send")
        nats_server.stop()
        response = await api.client.post("/v1/messages", json=welcome(), headers=headers)
        body = assert_problem(response, 503)
        assert "NATS" in body["detail"]
        assert response.headers["retry-after"]
        assert_problem(await api.client.get("/readyz"), 503)
        assert (await api.client.get("/healthz")).status_code == 200
    finally:
        await api.client.aclose()
        await server.stop()


async def test_postgres_away_is_503_not_500(
    settings: Settings, js: JetStreamContext, database_url: str
) -> None:
    gone = with_database(database_url, f"missing_{uuid.uuid4().hex[:8]}")
    server, api = await start_api(settings.model_copy(update={"api_timeout": 1.0}), gone)
    try:
        headers = {"Authorization": "Bearer jp_whatever"}
        response = await api.client.post("/v1/messages", json=welcome(), headers=headers)
        assert_problem(response, 503)
        ready = assert_problem(await api.client.get("/readyz"), 503)
        assert ready["checks"]["postgres"].startswith("unavailable")
        assert ready["checks"]["nats"] == "ok"
    finally:
        await api.client.aclose()
        await server.stop()


async def test_templates_list_and_preview(api: Api) -> None:
    headers = await api.as_("read")
    listed = (await api.client.get("/v1/templates", headers=headers)).json()["items"]
    welcome_t = next(t for t in listed if t["name"] == "welcome")
    assert "name" in welcome_t["variables"] and "subject" in welcome_t["parts"]
    assert len(welcome_t["version"]) == 16

    preview = await api.client.post(
        "/v1/templates/welcome/preview", json={"vars": {"name": "Zoë"}}, headers=headers
    )
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert "Zoë" in body["subject"] and "Zoë" in body["text"] and body["version"]
    missing = await api.client.post(
        "/v1/templates/welcome/preview", json={"vars": {}}, headers=headers
    )
    assert assert_problem(missing, 422)["missing_variable"] == "name"
    unknown = await api.client.post("/v1/templates/nope/preview", json={}, headers=headers)
    assert_problem(unknown, 404)
    extra = await api.client.post(
        "/v1/templates/welcome/preview", json={"var": {}}, headers=headers
    )
    assert_problem(extra, 400)


async def test_batch_returns_ids_in_entry_order(api: Api, js: JetStreamContext) -> None:
    headers = await api.as_("send")
    names = ["Ann", "Bob", "Cid"]
    listed = await api.client.post(
        "/v1/messages/batch", headers=headers, json={"messages": [welcome(n) for n in names]}
    )
    assert listed.status_code == 202, listed.text
    templated = await api.client.post(
        "/v1/messages/batch",
        headers=headers,
        json={
            "template": "welcome",
            "shared": {"tags": ["launch"]},
            "recipients": [{"to": f"{n.lower()}@example.org", "vars": {"name": n}} for n in names],
        },
    )
    assert templated.status_code == 202, templated.text
    for response, domain in ((listed, "example.com"), (templated, "example.org")):
        ids = response.json()["ids"]
        assert len(ids) == len(set(ids)) == 3
        for message_id, name in zip(ids, names, strict=True):
            accepted = await wait_for_event(js, message_id, "accepted")
            assert isinstance(accepted, Accepted)
            assert [m.email for m in accepted.envelope.to] == [f"{name.lower()}@{domain}"]
    bad = await api.client.post(
        "/v1/messages/batch",
        headers=headers,
        json={
            "messages": [
                welcome("Ok"),
                {"to": "nope", "subject": "s", "text": "t"},
                welcome(colour=1),
                {**welcome(), "template": "missing"},
            ]
        },
    )
    problem = assert_problem(bad, 422)
    assert [e["index"] for e in problem["errors"]] == [1, 2, 3]
    too_many = await api.client.post(
        "/v1/messages/batch", headers=headers, json={"messages": [welcome()] * 1001}
    )
    assert_problem(too_many, 400)
    assert (await js.stream_info(CMD_STREAM)).state.messages == 2


async def test_as_of_reads_the_log(api: Api, js: JetStreamContext) -> None:
    sent = await api.client.post("/v1/messages", json=welcome(), headers=await api.as_("send"))
    message_id = sent.json()["id"]
    await wait_for_event(js, message_id, "delivered")
    events = {e.type: e for e in await history(js, message_id)}
    reader = await api.as_("read")

    async def as_of(at: str) -> Any:
        return await api.client.get(
            f"/v1/messages/{message_id}", params={"as_of": at}, headers=reader
        )

    then = await as_of(events["accepted"].occurred_at.isoformat())
    assert then.status_code == 200, then.text
    assert then.json()["status"] == "accepted" and then.json()["to"] == ["alice@example.com"]
    rendered = (await as_of(events["rendered"].occurred_at.isoformat())).json()
    assert rendered["status"] == "rendered" and "Alice" in rendered["subject"]
    now = (await as_of(events["delivered"].occurred_at.isoformat())).json()
    assert now["status"] == "delivered" and now["delivered_at"]
    before = events["accepted"].occurred_at - timedelta(seconds=1)
    assert_problem(await as_of(before.isoformat()), 404)
    unknown = await api.client.get(
        "/v1/messages/nope", params={"as_of": before.isoformat()}, headers=reader
    )
    assert_problem(unknown, 404)
    crafted = await api.client.get(
        "/v1/messages/a.%3E", params={"as_of": "2030-01-01T00:00:00Z"}, headers=reader
    )
    assert_problem(crafted, 404)
    assert_problem(await as_of("yesterday"), 400)


async def test_docs_asyncapi_health_and_metrics(api: Api) -> None:
    openapi = (await api.client.get("/schema/openapi.json")).json()
    assert {"/v1/messages", "/v1/messages/batch", "/v1/stats"} <= set(openapi["paths"])
    assert "ApiKey" in openapi["components"]["securitySchemes"]
    swagger = await api.client.get("/schema/swagger")
    assert swagger.status_code == 200 and "swagger" in swagger.text.lower()
    asyncapi = (await api.client.get("/asyncapi.json")).json()
    addresses = {c["address"] for c in asyncapi["channels"].values()}
    assert {"mail.cmd.send", "mail.cmd.send_batch", "mail.evt.*.accepted"} <= addresses
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    assert_problem(await api.client.get("/v1/nowhere"), 404)
    assert_problem(await api.client.get("/v1/messages/x", headers=await api.as_("read")), 404)
    metrics = (await api.client.get("/metrics")).text
    assert 'route="/v1/messages/{message_id}"' in metrics and 'status="404"' in metrics
    assert "jetpost_api_request_duration_seconds_bucket" in metrics


async def test_ready_only_when_projections_are_caught_up(
    pipeline: Any, settings: Settings, database_url: str, js: JetStreamContext
) -> None:
    server, api = await start_api(settings.model_copy(update={"ready_max_lag": 0}), database_url)
    projector = Projector(database_url, settings.nats_address)
    try:
        await projector.start()
        sent = await api.client.post("/v1/messages", json=welcome(), headers=await api.as_("send"))
        await wait_for_event(js, sent.json()["id"], "delivered")
        ready = await eventually(
            lambda: _status_is(api, "/readyz", 200), "readyz 200 once projections catch up"
        )
        assert set(ready.json()["checks"]["projections"]) >= {"messages"}
        await projector.stop()
        again = await api.client.post(
            "/v1/messages", json=welcome("Bo"), headers=await api.as_("send")
        )
        await wait_for_event(js, again.json()["id"], "delivered")
        not_ready = await api.client.get("/readyz")
        lagging = assert_problem(not_ready, 503)
        assert int(not_ready.headers["retry-after"]) > 0
        assert lagging["checks"]["projections"]["messages"]["lag"] > 0
        metrics = (await api.client.get("/metrics")).text
        assert 'jetpost_projection_lag{projection="messages"}' in metrics
        await projector.start()
        await eventually(lambda: _status_is(api, "/readyz", 200), "readyz 200 again")
    finally:
        await projector.stop()
        await api.client.aclose()
        await server.stop()


async def _status_is(api: Api, path: str, status: int) -> Any:
    response = await api.client.get(path)
    return response if response.status_code == status else None


@pytest.mark.parametrize("scopes", [("send", "read")])
async def test_unknown_message_resend_is_404(api: Api, scopes: tuple[str, ...]) -> None:
    headers = await api.as_(*scopes)
    missing = await api.client.post(f"/v1/messages/{uuid.uuid4().hex}/resend", headers=headers)
    assert_problem(missing, 404)
