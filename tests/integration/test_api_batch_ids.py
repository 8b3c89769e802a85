"""Ids that retried requests get again: a batch's Idempotency-Key, entries' own keys,
caller-chosen message ids used twice, and a send too large for NATS."""

from __future__ import annotations

import json
import uuid

from nats.js import JetStreamContext

from shared.events import Rejected
from shared.subjects import CMD_SEND, CMD_STREAM, event_filter
from tests.eventlog_reader import read_all, wait_for_event
from tests.integration.test_api_support import (  # noqa: F401
    Api,
    api_fixture,
    assert_problem,
    eventually,
)


def entry(name: str, **extra: object) -> dict[str, object]:
    return {"to": f"{name}@example.com", "subject": "Hi", "text": f"hi {name}", **extra}


async def test_batch_idempotency_key_and_entry_keys(api: Api, js: JetStreamContext) -> None:
    headers = {**await api.as_("send"), "Idempotency-Key": "campaign-7"}
    batch = {"messages": [entry("a"), entry("b"), entry("c")]}
    first = await api.client.post("/v1/messages/batch", json=batch, headers=headers)
    again = await api.client.post("/v1/messages/batch", json=batch, headers=headers)
    assert first.status_code == again.status_code == 202, first.text
    assert first.json() == again.json()
    other = await api.client.post("/v1/messages/batch", json={"messages": [entry("z")]},
                                  headers=headers)  # fmt: skip
    assert_problem(other, 409)

    keyed = {"messages": [entry("d", idempotency_key="d-1"), entry("e", idempotency_key="e-1")]}
    plain = {"Authorization": headers["Authorization"]}
    one = await api.client.post("/v1/messages/batch", json=keyed, headers=plain)
    two = await api.client.post("/v1/messages/batch", json=keyed, headers=plain)
    assert one.json()["ids"] == two.json()["ids"]
    changed = {"messages": [entry("d", idempotency_key="d-1", text="other")]}
    assert_problem(await api.client.post("/v1/messages/batch", json=changed, headers=plain), 409)

    ids = first.json()["ids"] + one.json()["ids"]
    for mid in ids:  # every id answered is a message that exists
        await wait_for_event(js, mid, "delivered")
    accepted = await read_all(js, event_filter("accepted"))
    assert sorted(e.message_id for e in accepted) == sorted(ids)


async def test_a_message_id_used_twice_is_refused(api: Api, js: JetStreamContext) -> None:
    headers = await api.as_("send")
    mid = uuid.uuid4().hex
    first = await api.client.post("/v1/messages", json=entry("a", message_id=mid), headers=headers)
    assert first.status_code == 202
    await wait_for_event(js, mid, "accepted")
    again = await api.client.post("/v1/messages", json=entry("b", message_id=mid),
                                  headers=headers)  # fmt: skip
    assert assert_problem(again, 409)["message_id"] == mid
    in_batch = await api.client.post("/v1/messages/batch",
                                     json={"messages": [entry("c", message_id=mid)]},
                                     headers=headers)  # fmt: skip
    assert_problem(in_batch, 409)
    # Over NATS (no API in front): recorded as rejected with the reason.
    await js.publish(CMD_SEND, json.dumps(entry("d", message_id=mid)).encode(), stream=CMD_STREAM)
    [rejected] = await eventually(lambda: read_all(js, event_filter("rejected")), "a rejection")
    assert isinstance(rejected, Rejected) and "already used" in rejected.reason
    [accepted] = await read_all(js, f"mail.evt.{mid}.accepted")
    assert accepted.envelope.to[0].email == "a@example.com"  # type: ignore[union-attr]


async def test_a_send_too_large_for_nats_is_413_up_front(api: Api) -> None:
    headers = await api.as_("send")
    big = entry("a", html="<p>" + "x" * 700_000 + "</p>")
    response = await api.client.post("/v1/messages", json=big, headers=headers)
    assert "JETPOST_MAX_CONTENT_BYTES" in assert_problem(response, 413)["detail"]
    batch = await api.client.post("/v1/messages/batch", json={"messages": [big]}, headers=headers)
    assert_problem(batch, 413)
