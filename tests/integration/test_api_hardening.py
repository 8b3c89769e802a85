"""The API's edges under hostile use (issue 14 items 3, 5, 6, 7, 10, 11): bodies
past NATS' message size refused before they are read, huge recipient lists refused
at once, malformed JSON a 4xx with a reason, tracking links replayed without limit
folded and rate-limited, failed key lookups remembered and rate-limited, and an
OpenAPI document that names every answer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from nats.js import JetStreamContext

from services.api.server import ApiServer
from shared.settings import Settings
from shared.tokens import click_token, load_key_ring, open_token
from tests.conftest import Pipeline
from tests.eventlog_reader import read_all
from tests.integration.test_api_support import Api, assert_problem, start_api


@pytest.fixture
async def api(pipeline: Pipeline, settings: Settings, database_url: str) -> AsyncIterator[Api]:
    limited = settings.model_copy(
        update={"track_rate": 8.0, "track_token_rate": 6.0, "api_auth_fail_rate": 5.0,
                "api_key_miss_ttl": 30.0}
    )  # fmt: skip
    server: ApiServer
    server, running = await start_api(limited, database_url)
    yield running
    await running.client.aclose()
    await server.stop()


async def test_bodies_and_recipient_lists_are_refused_before_the_work(api: Api) -> None:
    headers = {**await api.as_("send"), "content-type": "application/json"}
    huge = json.dumps({"to": [f"u{i}@example.com" for i in range(250_000)], "subject": "s",
                       "text": "t"})  # fmt: skip
    assert len(huge) > 4_000_000
    body = assert_problem(await api.client.post("/v1/messages", content=huge, headers=headers), 413)
    assert body["type"].endswith("too-large")
    # under the body cap, but far over the recipient limit: counted before parsing
    many = json.dumps({"to": [f"u{i}@example.com" for i in range(30_000)], "subject": "s",
                       "text": "t"})  # fmt: skip
    started = time.perf_counter()
    posted = asyncio.create_task(api.client.post("/v1/messages", content=many, headers=headers))
    health = await api.client.get("/healthz")  # the event loop is not held up meanwhile
    body = assert_problem(await posted, 400)
    elapsed = time.perf_counter() - started
    assert health.status_code == 200
    assert "at most 50 recipients" in body["detail"]
    print(f"30,000 recipients refused in {elapsed:.3f}s")


MALFORMED = [
    (b'{"to":"a@example.com","subject":"\\ud800","text":"t"}', "surrogate"),
    (b'{"to":"a@example.com","template":"welcome","vars":{"n":' + b"9" * 4300 + b"}}", ""),
    (b'{"to":"a@example.com","template":"welcome","vars":{"a":' + b"[" * 300 + b"]" * 300
     + b"}}", "nested"),
    (b'{"to":"a@example.com","subject":"s","text":"t","transactional":"yes"}', "boolean"),
    (b'{"to":"a@example.com","subject":"s","text":"t","transactional":0}', "boolean"),
    (b'{"to":"a@example.com","subject":"s\\u2028x","text":"t"}', "line break"),
    (b'{"to":"a@example.com","subject":"s","text":"t","headers":{"Resent-To":"x@e.com"}}',
     "reserved"),
    (b'{"to":"a@example.com","subject":"s","text":"t",'
     b'"headers":{"Authentication-Results":"mx; dkim=pass"}}', "reserved"),
]  # fmt: skip


async def test_malformed_sends_are_4xx_with_a_reason(api: Api) -> None:
    headers = {**await api.as_("send"), "content-type": "application/json"}
    for raw, reason in MALFORMED:
        posted = await api.client.post("/v1/messages", content=raw, headers=headers)
        body = assert_problem(posted, (400, 422))
        assert reason in body["detail"], body


async def test_tracking_hits_are_folded_and_rate_limited(
    api: Api, js: JetStreamContext, settings: Settings
) -> None:
    keys = load_key_ring(settings)
    link = f"/t/c/{click_token(keys, 'msg-t1', 'https://example.com/a')}"
    answers = [(await api.client.get(link)).status_code for _ in range(8)]
    assert answers[:6] == [302] * 6 and answers[6:] == [429, 429]  # 6 per token a minute
    limited = await api.client.get(link)
    assert_problem(limited, 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert len(await read_all(js, "mail.evt.msg-t1.clicked")) == 1  # the first hit only
    # the client address has a budget too (8 a minute): another token is refused now
    pixel = await api.client.get(f"/t/o/{open_token(keys, 'msg-t2')}")
    assert_problem(pixel, 429)
    assert await read_all(js, "mail.evt.msg-t2.opened") == []


async def test_failed_key_lookups_are_cached_and_rate_limited(api: Api) -> None:
    secret = await api.key("read")
    good = {"Authorization": f"Bearer {secret}"}
    async with await psycopg.AsyncConnection.connect(api.database_url, autocommit=True) as conn:
        await conn.execute("UPDATE api_keys SET revoked_at = now()")
        assert_problem(await api.client.get("/v1/templates", headers=good), 401)
        # brought back in the database: the miss is remembered, no lookup per request
        await conn.execute("UPDATE api_keys SET revoked_at = NULL")
    assert_problem(await api.client.get("/v1/templates", headers=good), 401)
    statuses = []
    for i in range(6):
        bad = {"Authorization": f"Bearer jp_wrong_{i}"}
        statuses.append((await api.client.get("/v1/templates", headers=bad)).status_code)
    assert statuses[:3] == [401] * 3 and statuses[-1] == 429, statuses
    refused = await api.client.get("/v1/templates", headers={"Authorization": "Bearer jp_x"})
    assert_problem(refused, 429)
    assert int(refused.headers["retry-after"]) >= 1


async def test_openapi_names_every_answer(api: Api) -> None:
    doc: dict[str, Any] = (await api.client.get("/schema/openapi.json")).json()
    send = doc["paths"]["/v1/messages"]["post"]["responses"]
    for status in ("400", "401", "403", "413", "422", "429", "503"):
        assert list(send[status]["content"]) == ["application/problem+json"], status
    assert "Retry-After" in send["503"]["headers"]
    one = doc["paths"]["/v1/messages/{message_id}"]["get"]["responses"]
    assert "404" in one and "401" in one
    assert list(doc["paths"]["/t/o/{token}"]["get"]["responses"]["200"]["content"]) == ["image/gif"]
    assert "302" in doc["paths"]["/t/c/{token}"]["get"]["responses"]
    assert list(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]
    schemas = doc["components"]["schemas"]
    assert schemas["SendCommand"]["additionalProperties"] is False
    assert schemas["Problem"]["required"] == ["type", "title", "status", "detail"]
