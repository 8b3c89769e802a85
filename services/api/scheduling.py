"""Cancel and reschedule over HTTP. Both decide on the message's history in the log
and append with a compare-and-set (services.intake.change), so the answer is exact:
200 with the state the message is in, 404, or 409 with its current status."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import Field

from services.api.auth import SECURITY, SEND
from services.api.messages import known_id
from services.api.problems import Problem
from services.api.routing import patch, post
from services.api.runtime import Runtime
from services.api.schemas import Body
from services.intake import cancel, reschedule
from services.intake.change import Change, History, apply_change
from shared.eventlog import AppendConflict
from shared.scheduling import CancelCommand, RescheduleCommand

TAGS = ["sending"]


class CancelRequest(Body):
    reason: str = Field(default="", max_length=500)


class RescheduleRequest(Body):
    send_at: datetime = Field(description="ISO 8601 with a zone; a time past sends now")


class ScheduleState(Body):
    id: str
    status: str
    send_at: datetime | None = None


def max_ahead(rt: Runtime, send_at: datetime) -> None:
    if send_at.utcoffset() is None:
        raise Problem(422, "invalid-command", "send_at: needs a time zone")
    limit = rt.settings.max_schedule
    if send_at > datetime.now(UTC) + timedelta(seconds=limit):
        raise Problem(422, "invalid-command",
                      f"send_at: at most {limit:.0f} s ahead (JETPOST_MAX_SCHEDULE)")  # fmt: skip


def answer(message_id: str, change: Change, send_at: datetime | None = None) -> ScheduleState:
    if change.refused == "not-found":
        raise Problem(404, "not-found", change.detail)
    if change.refused:
        raise Problem(409, "conflict", change.detail, current_status=change.status)
    return ScheduleState(id=message_id, status=change.status, send_at=send_at)


async def run(rt: Runtime, message_id: str, decide: Callable[[History], Change]) -> Change:
    with rt.bus.reachable("change"):
        try:
            return await apply_change(rt.bus.js, message_id, decide)
        except AppendConflict as exc:
            raise Problem(409, "conflict", str(exc)) from exc


@post("/v1/messages/{message_id:str}/cancel", summary="Cancel a message not yet sent",
      status_code=200, guards=SEND, security=SECURITY, tags=TAGS)  # fmt: skip
async def cancel_message(
    rt: NamedDependency[Runtime],
    message_id: FromPath[str],
    data: JSONBody[CancelRequest | None] = None,
) -> ScheduleState:
    command = CancelCommand(message_id=known_id(message_id), reason=data.reason if data else "")
    change = await run(rt, message_id, lambda h: cancel.decide(command, h))
    return answer(message_id, change)


@patch("/v1/messages/{message_id:str}", summary="Move a scheduled message to another time",
       guards=SEND, security=SECURITY, tags=TAGS)  # fmt: skip
async def reschedule_message(
    rt: NamedDependency[Runtime], message_id: FromPath[str], data: JSONBody[RescheduleRequest]
) -> ScheduleState:
    max_ahead(rt, data.send_at)
    command = RescheduleCommand(message_id=known_id(message_id), send_at=data.send_at)
    change = await run(rt, message_id, lambda h: reschedule.decide(command, h))
    return answer(message_id, change, data.send_at)


ROUTES = [cancel_message, reschedule_message]
