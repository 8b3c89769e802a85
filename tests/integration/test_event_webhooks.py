"""Outgoing event webhooks over real servers: NATS, PostgreSQL, the SMTP sink, the
pipeline, the API, `run_webhooks`, and a real HTTP receiver that verifies every
signature with the `standardwebhooks` package."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from services.api.app import create_app
from services.api.server import ApiServer
from services.capture import CaptureSink
from services.webhooks.service import run_webhooks
from shared.events import utcnow
from shared.settings import Settings
from shared.subjects import CMD_SEND_BATCH, CMD_STREAM, EVT_STREAM
from tests.conftest import Background, Pipeline
from tests.eventlog_reader import read_all
from tests.integration.test_api_support import assert_problem, eventually
from tests.webhook_receiver import Receiver


@dataclass
class Stack:
    client: httpx.AsyncClient
    admin: dict[str, str]
    js: JetStreamContext
    receiver: Receiver
    settings: Settings

    async def register(self, events: list[str] | None = None, url: str = "") -> tuple[str, str]:
        """A new endpoint, once the webhooks service has its consumer."""
        body: dict[str, Any] = {"url": url or self.receiver.url, "description": "test"}
        if events is not None:
            body["events"] = events
        created = await self.client.post("/v1/webhook-endpoints", json=body, headers=self.admin)
        assert created.status_code == 201, created.text
        endpoint_id, secret = created.json()["id"], created.json()["secret"]
        assert secret.startswith("whsec_")
        self.receiver.secrets.append(secret)

        async def consumer() -> bool:
            try:
                await self.js.consumer_info(EVT_STREAM, f"webhook_{endpoint_id}")
            except NotFoundError:
                return False
            return (await self.client.get(f"/v1/webhook-endpoints/{endpoint_id}",
                                          headers=self.admin)).status_code == 200  # fmt: skip

        await eventually(consumer, "the endpoint's consumer and read model")
        return endpoint_id, secret

    async def send(self, count: int, tag: str = "news") -> None:
        messages = [{"to": f"user{i}@example.com", "template": "welcome",
                     "vars": {"name": f"U{i}"}, "tags": [tag]} for i in range(count)]  # fmt: skip
        await self.js.publish(CMD_SEND_BATCH, json.dumps({"messages": messages}).encode(),
                              stream=CMD_STREAM)  # fmt: skip

    async def deliveries(self, endpoint_id: str, **params: Any) -> list[dict[str, Any]]:
        """Every recorded attempt, page by page (keyset cursor)."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**params, "limit": 20, **({"cursor": cursor} if cursor else {})}
            page = await self.client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries",
                                         params=query, headers=self.admin)  # fmt: skip
            assert page.status_code == 200, page.text
            items += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return items


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack(
    settings: Settings, js: JetStreamContext, database_url: str, projector: Any
) -> AsyncIterator[StackFactory]:
    from services.api.keys import create_key

    started: list[Any] = []

    async def make(**overrides: Any) -> Stack:
        config = settings.model_copy(update={
            "database_url": database_url, "webhook_allow_private": True,
            "webhook_retry_delays": "0.3,0.3,0.5,0.5,1,1,1", "webhook_timeout": 3.0,
            "api_timeout": 2.0, "api_key_cache_ttl": 0.0, **overrides,
        })  # fmt: skip
        pipeline = Pipeline(config)
        await pipeline.start()
        started.append(pipeline)
        receiver = Receiver()
        await receiver.start()
        started.append(receiver)
        server = ApiServer(create_app(config), "127.0.0.1", 0)
        url = await server.start()
        started.append(server)
        hooks = Background()
        await hooks.launch(lambda stop, up: run_webhooks(config, stop, up), "webhooks")
        started.append(hooks)
        import psycopg

        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            _, key = await create_key(conn, ["admin"], "test")
        client = httpx.AsyncClient(base_url=url, timeout=15)
        started.append(client)
        return Stack(client, {"Authorization": f"Bearer {key}"}, js, receiver, config)

    yield make
    for thing in reversed(started):
        if isinstance(thing, httpx.AsyncClient):
            await thing.aclose()
        else:
            await thing.stop()


async def test_fifty_mails_fifty_signed_webhooks_each_once(
    make_stack: StackFactory, sink: CaptureSink
) -> None:
    stack = await make_stack()
    endpoint_id, _ = await stack.register(events=["message.delivered"])
    await stack.send(50)
    await eventually(lambda: _count(stack.receiver, 50), "50 webhooks", timeout=60)
    delivered = await read_all(stack.js, "mail.evt.*.delivered")
    assert len(delivered) == 50
    got = stack.receiver.delivered()
    assert stack.receiver.bad_signatures == 0
    assert sorted(r.webhook_id for r in got) == sorted(e.event_id for e in delivered)  # once each
    by_id = {e.event_id: e for e in delivered}
    for r in got:
        assert r.body["type"] == "message.delivered"
        data = r.body["data"]
        assert data["message_id"] == by_id[r.webhook_id].message_id
        assert data["to"][0].startswith("user") and data["tags"] == ["news"]
        assert data["template"] == "welcome" and data["provider"] and "attempt" in data
    rows = await eventually(lambda: _recorded(stack, endpoint_id, 50), "50 recorded attempts")
    assert {r["outcome"] for r in rows} == {"delivered"}
    assert {r["http_status"] for r in rows} == {200}
    assert all(r["response"] == "thanks" and r["latency_ms"] > 0 for r in rows)
    one = await stack.deliveries(endpoint_id, message_id=delivered[0].message_id)
    assert [r["webhook_id"] for r in one] == [delivered[0].event_id]


async def _count(receiver: Receiver, n: int) -> bool:
    return len(receiver.delivered_ids()) >= n


async def _recorded(stack: Stack, endpoint_id: str, n: int) -> list[dict[str, Any]] | None:
    rows = await stack.deliveries(endpoint_id)
    return rows if len(rows) >= n else None


async def test_failing_receiver_gets_everything_once_it_recovers(
    make_stack: StackFactory, sink: CaptureSink
) -> None:
    stack = await make_stack()
    endpoint_id, _ = await stack.register(events=["message.delivered", "message.accepted"])
    stack.receiver.mode = "fail"
    await stack.send(10)
    failed = await eventually(lambda: _recorded(stack, endpoint_id, 30), "retries", timeout=30)
    assert {r["outcome"] for r in failed} == {"retrying"}
    assert {r["http_status"] for r in failed} == {500}
    stack.receiver.mode = "ok"
    events = [*await read_all(stack.js, "mail.evt.*.delivered"),
              *await read_all(stack.js, "mail.evt.*.accepted")]  # fmt: skip
    assert len(events) == 20
    await eventually(lambda: _count(stack.receiver, 20), "20 webhooks after recovery", timeout=30)
    assert stack.receiver.delivered_ids() == {e.event_id for e in events}
    # every request of one event carried the same webhook-id: the receiver only ever saw
    # those 20 ids, failed or not
    assert {r.webhook_id for r in stack.receiver.received} == {e.event_id for e in events}
    assert stack.receiver.bad_signatures == 0

    async def recorded() -> list[dict[str, Any]] | None:
        rows = await stack.deliveries(endpoint_id, outcome="delivered")
        return rows if len(rows) >= 20 else None

    rows = await eventually(recorded, "20 delivered attempts recorded")
    assert {r["webhook_id"] for r in rows} == {e.event_id for e in events}
    assert all(r["attempt"] > 1 for r in rows)


async def test_hanging_receiver_does_not_hold_up_mail(
    make_stack: StackFactory, sink: CaptureSink
) -> None:
    stack = await make_stack(webhook_timeout=60.0)
    stack.receiver.mode = "hang"
    endpoint_id, _ = await stack.register()  # every type: accepted, delivered, ...
    await stack.send(20)
    await sink.wait_for(20, timeout=30)
    # all the mail went out while not one webhook attempt has finished
    assert stack.receiver.hanging > 0
    assert await stack.deliveries(endpoint_id) == []


async def test_replay_from_a_time_sends_again(make_stack: StackFactory, sink: CaptureSink) -> None:
    stack = await make_stack()
    endpoint_id, _ = await stack.register(events=["message.delivered"])
    before = utcnow() - timedelta(seconds=1)
    await stack.send(5)
    await eventually(lambda: _count(stack.receiver, 5), "5 webhooks")
    first = stack.receiver.delivered_ids()
    asked = await stack.client.post(
        f"/v1/webhook-endpoints/{endpoint_id}/replay",
        json={"since": before.isoformat()},
        headers=stack.admin,
    )
    assert asked.status_code == 202, asked.text
    replay_id = asked.json()["replay_id"]

    async def twice() -> bool:
        return len(stack.receiver.delivered()) >= 10

    await eventually(twice, "the replayed webhooks")
    assert {r.webhook_id for r in stack.receiver.delivered()[5:]} == first

    async def finished() -> bool:
        done = await read_all(stack.js, "mail.evt.*.webhook_replay_finished")
        return any(getattr(e, "replay_id", None) == replay_id for e in done)

    await eventually(finished, "webhook_replay_finished")
    rows = await stack.deliveries(endpoint_id)
    assert sum(1 for r in rows if r["replay_id"] == replay_id) == 5
    bad = await stack.client.post(f"/v1/webhook-endpoints/{endpoint_id}/replay", json={},
                                  headers=stack.admin)  # fmt: skip
    assert_problem(bad, 400)


async def test_secret_rotation_signs_with_both(make_stack: StackFactory) -> None:
    stack = await make_stack()
    endpoint_id, old = await stack.register(events=["message.delivered"])
    stack.receiver.secrets = [old]
    tested = await stack.client.post(f"/v1/webhook-endpoints/{endpoint_id}/test",
                                     headers=stack.admin)  # fmt: skip
    assert tested.status_code == 200 and tested.json()["ok"], tested.text
    rotated = await stack.client.post(f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
                                      headers=stack.admin)  # fmt: skip
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != old and new.startswith("whsec_")

    async def both() -> bool:
        response = await stack.client.post(f"/v1/webhook-endpoints/{endpoint_id}/test",
                                           headers=stack.admin)  # fmt: skip
        return (
            response.json()["ok"]
            and len(stack.receiver.received[-1].headers["webhook-signature"].split()) == 2
        )

    await eventually(both, "a test webhook signed with both secrets")
    last = stack.receiver.received[-1]
    raw = json.dumps(last.body, separators=(",", ":")).encode()
    from standardwebhooks import Webhook

    for secret in (old, new):  # a receiver holding either secret accepts it
        Webhook(secret).verify(raw, last.headers)
    assert last.body["type"] == "webhook.test"
    rows = await stack.deliveries(endpoint_id, type="webhook.test")
    assert len(rows) >= 2 and rows[0]["outcome"] == "delivered"


async def test_endpoint_crud_and_refusals(make_stack: StackFactory) -> None:
    stack = await make_stack(webhook_allow_private=False)
    # Registration checks where the URL goes (the receiver is on loopback).
    for url, why in [
        ("http://169.254.169.254/latest/meta-data", "https"),
        ("https://169.254.169.254/", "link-local"),
        ("https://[fe80::1]/x", "link-local"),
        ("https://127.0.0.1/x", "private"),
        ("https://localhost/x", "private"),
        ("https://10.1.2.3/x", "private"),
        ("http://example.com/x", "https"),
        ("https://user:pw@example.com/x", "user"),
    ]:
        refused = await stack.client.post("/v1/webhook-endpoints", json={"url": url},
                                          headers=stack.admin)  # fmt: skip
        assert why in assert_problem(refused, 422)["detail"], (url, refused.text)
    unknown = await stack.client.post("/v1/webhook-endpoints",
                                      json={"url": "https://x.test", "events": ["nope"]},
                                      headers=stack.admin)  # fmt: skip
    assert_problem(unknown, 400)
    reader = await stack.client.get("/v1/webhook-endpoints", headers={"Authorization": "Bearer x"})
    assert_problem(reader, 401)
    assert_problem(await stack.client.get("/v1/webhook-endpoints/whe_nope", headers=stack.admin),
                   404)  # fmt: skip


async def test_every_connect_is_checked_so_dns_rebinding_does_not_get_through() -> None:
    from services.webhooks.post import Poster
    from services.webhooks.ssrf import check_target

    receiver = Receiver()
    await receiver.start()
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])  # public when registered, then not

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    port = receiver.url.split(":")[2].split("/")[0]
    url = f"https://hooks.rebind.test:{port}/hooks"
    await check_target(url, False, rebinding)  # registration: fine
    poster = Poster(False, 2.0, rebinding)
    try:
        attempt = await poster.post(url, b"{}", {})
        assert not attempt.ok and attempt.error and "127.0.0.1" in attempt.error
        metadata = Poster(True, 2.0, _always("169.254.169.254"))
        attempt = await metadata.post(receiver.url, b"{}", {})
        await metadata.close()
        assert not attempt.ok and attempt.error and "link-local" in attempt.error
        assert receiver.received == []  # nothing ever connected
    finally:
        await poster.close()
        await receiver.stop()


def _always(address: str) -> Callable[[str, int], Awaitable[list[str]]]:
    async def resolve(host: str, port: int) -> list[str]:
        return [address]

    return resolve


async def test_an_endpoint_failing_too_long_is_disabled(
    make_stack: StackFactory, sink: CaptureSink
) -> None:
    stack = await make_stack(webhook_disable_after=0.5)
    stack.receiver.mode = "fail"
    endpoint_id, _ = await stack.register(events=["message.delivered"])
    await stack.send(1)

    async def disabled() -> bool:
        found = await read_all(stack.js, f"mail.evt.{endpoint_id}.webhook_endpoint_disabled")
        return bool(found)

    await eventually(disabled, "webhook_endpoint_disabled", timeout=30)

    async def shown() -> bool:
        got = await stack.client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=stack.admin)
        return not got.json()["enabled"] and "failing" in got.json()["disabled_reason"]

    await eventually(shown, "the endpoint shown disabled")
    # enabled again by hand: delivery resumes on the same consumer
    stack.receiver.mode = "ok"
    patched = await stack.client.patch(f"/v1/webhook-endpoints/{endpoint_id}",
                                       json={"enabled": True}, headers=stack.admin)  # fmt: skip
    assert patched.status_code == 202, patched.text
    await eventually(lambda: _count(stack.receiver, 1), "the webhook after re-enabling", 30)
    # a bad command through NATS is recorded as rejected, not dropped
    await stack.js.publish("mail.cmd.webhook_update", b'{"endpoint_id": "whe_nope", "url": 1}',
                           stream=CMD_STREAM)  # fmt: skip
    await stack.js.publish("mail.cmd.webhook_delete", b'{"endpoint_id": "whe_nope"}',
                           stream=CMD_STREAM)  # fmt: skip

    async def rejected() -> list[Any] | None:
        found = await read_all(stack.js, "mail.evt.*.rejected")
        return found if len(found) >= 2 else None

    reasons = [getattr(e, "reason", "") for e in await eventually(rejected, "two rejections")]
    assert any("url" in r for r in reasons) and any("no webhook endpoint" in r for r in reasons)


@pytest.mark.slow  # three `jetpost` processes
async def test_cli_add_list_rm(make_stack: StackFactory) -> None:
    import asyncio
    import os

    from tests.conftest import JETPOST

    stack = await make_stack()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETPOST_")}
    env.update(JETPOST_NATS_URL=stack.settings.nats_address, JETPOST_WEBHOOK_ALLOW_PRIVATE="true",
               JETPOST_DATA_DIR=str(stack.settings.data_dir), COLUMNS="250")  # fmt: skip

    async def jetpost(*args: str) -> tuple[int, str, str]:
        child = await asyncio.create_subprocess_exec(
            JETPOST, "webhooks", *args, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(child.communicate(), 60)
        return child.returncode or 0, out.decode(), err.decode()

    code, out, err = await jetpost("add", stack.receiver.url, "--event", "message.bounced")
    assert code == 0, err
    endpoint_id, secret = out.split()
    assert secret.startswith("whsec_")

    # the API (sharing the data dir's key) opens the secret the CLI sealed
    stack.receiver.secrets.append(secret)

    async def tested() -> bool:
        got = await stack.client.post(f"/v1/webhook-endpoints/{endpoint_id}/test",
                                      headers=stack.admin)  # fmt: skip
        return got.status_code == 200 and got.json()["ok"]

    await eventually(tested, "a test webhook to the CLI's endpoint")
    code, out, _ = await jetpost("list")
    assert code == 0 and endpoint_id in out and secret not in out
    assert (await jetpost("rm", endpoint_id))[0] == 0

    async def gone() -> bool:
        got = await stack.client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=stack.admin)
        return got.status_code == 404

    await eventually(gone, "the endpoint removed")
