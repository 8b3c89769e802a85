"""Scheduled sends on JetStream message schedules (ADR-51, nats-server 2.12+).

A message sent with `send_at` gets one schedule message on `mail.sched.at.<id>` in
MAIL_SCHED carrying `Nats-Schedule: @at <time>` and `Nats-Schedule-Target:
mail.sched.due.<id>`; nats-server publishes it to the target when it falls due (at
start-up for anything that fell due while it was down) and removes the schedule.
Nothing in jetpost polls. A reschedule publishes a new schedule on the same subject
(a rollup replaces the old one); a cancel purges the subject.

The schedule's body names its revision, the event id of the `scheduled` or
`rescheduled` event it belongs to, so the scheduler can tell a stale firing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.subjects import MESSAGE_ID_RE, SCHED_STREAM, due_subject, schedule_subject


class CancelCommand(BaseModel):
    """`mail.cmd.cancel`: stop a message that nothing has handed to a provider yet."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: str = Field(pattern=MESSAGE_ID_RE.pattern)
    reason: str = Field(default="", max_length=500)


class RescheduleCommand(CancelCommand):
    """`mail.cmd.reschedule`: move a scheduled message to another time."""

    send_at: datetime

    @field_validator("send_at")
    @classmethod
    def _zone(cls, value: datetime) -> datetime:
        if value.utcoffset() is None:
            raise ValueError("send_at needs a time zone (e.g. 2026-12-24T09:00:00+01:00)")
        return value


class Due(BaseModel):
    """The body of a schedule message (and so of what falls due)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    message_id: str
    revision: str
    send_at: datetime


def at_header(send_at: datetime) -> str:
    return "@at " + send_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def schedule_message(due: Due) -> tuple[str, bytes, dict[str, Any]]:
    """Subject, body and headers of the schedule for `due`."""
    headers = {
        "Nats-Schedule": at_header(due.send_at),
        "Nats-Schedule-Target": due_subject(due.message_id),
        "Nats-Rollup": "sub",  # the message's one schedule: replace any earlier one
        "Nats-Msg-Id": f"{due.message_id}:schedule:{due.revision}",
    }
    body = json.dumps(due.model_dump(mode="json")).encode()
    return schedule_subject(due.message_id), body, headers


async def publish_schedule(js: JetStreamContext, due: Due) -> None:
    subject, body, headers = schedule_message(due)
    await js.publish(subject, body, stream=SCHED_STREAM, headers=headers)


async def drop_schedule(js: JetStreamContext, message_id: str) -> None:
    """Remove the message's pending schedule (if any): it will not fall due."""
    await js.purge_stream(SCHED_STREAM, subject=schedule_subject(message_id))
