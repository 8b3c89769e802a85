"""Scheduling over HTTP: send_at, listing scheduled mail, PATCH to reschedule,
cancel (200 twice, 409 once sent, 404), limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext

from services.capture import CaptureSink
from tests.conftest import Projector
from tests.eventlog_reader import types_of, wait_for_event
from tests.integration.test_api_support import (  # noqa: F401
    Api,
    api_fixture,
    assert_problem,
    eventually,
)


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def body(**extra: object) -> dict[str, object]:
    return {"to": "alice@example.com", "subject": "Later", "text": "hello", **extra}


async def test_schedule_list_reschedule_and_cancel(
    api: Api, js: JetStreamContext, sink: CaptureSink, projector: Projector
) -> None:
    headers = await api.as_("send", "read")
    sent = await api.client.post("/v1/messages", json=body(send_at=at(3600)), headers=headers)
    assert sent.status_code == 202, sent.text
    mid = sent.json()["id"]
    await wait_for_event(js, mid, "scheduled")
    await projector.caught_up(js)
    listed = await api.client.get("/v1/messages?status=scheduled", headers=headers)
    [row] = listed.json()["items"]
    assert row["id"] == mid and row["send_at"] is not None

    moved = await api.client.patch(f"/v1/messages/{mid}", json={"send_at": at(1)},
                                   headers=headers)  # fmt: skip
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "scheduled"
    await wait_for_event(js, mid, "delivered", timeout=15)
    assert len(sink.received) == 1

    late = await api.client.post(f"/v1/messages/{mid}/cancel", headers=headers)
    problem = assert_problem(late, 409)
    assert problem["current_status"] == "delivered"
    again = await api.client.patch(f"/v1/messages/{mid}", json={"send_at": at(60)},
                                   headers=headers)  # fmt: skip
    assert_problem(again, 409)

    other = await api.client.post("/v1/messages", json=body(send_at=at(3600)), headers=headers)
    oid = other.json()["id"]
    await wait_for_event(js, oid, "scheduled")
    for _ in range(2):  # cancelling twice: the same answer
        cancelled = await api.client.post(f"/v1/messages/{oid}/cancel", headers=headers)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
    assert await types_of(js, oid) == ["scheduled", "cancelled"]
    assert (await js.stream_info("MAIL_SCHED")).state.messages == 0  # the schedule is gone


async def test_scheduling_refusals(api: Api) -> None:
    headers = await api.as_("send")
    far = await api.client.post("/v1/messages", json=body(send_at=at(40 * 86400)),
                                headers=headers)  # fmt: skip
    assert "JETPOST_MAX_SCHEDULE" in assert_problem(far, 422)["detail"]
    naive = await api.client.post("/v1/messages", json=body(send_at="2030-01-01T09:00:00"),
                                  headers=headers)  # fmt: skip
    assert "time zone" in assert_problem(naive, (400, 422))["detail"]
    missing = await api.client.post("/v1/messages/nope/cancel", headers=headers)
    assert_problem(missing, 404)
    assert_problem(await api.client.patch("/v1/messages/nope", json={"send_at": at(5)},
                                          headers=headers), 404)  # fmt: skip
