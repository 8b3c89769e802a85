"""Pure scheduling decisions: send_at at intake, cancel, reschedule, a schedule due."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from services.intake import cancel, reschedule
from services.intake.logic import CommandContext, decide, without_suppressed
from services.scheduler.logic import Drop, Release, Wait, on_due
from shared.events import (
    Accepted,
    Attempted,
    Deferred,
    Delivered,
    Event,
    Rejected,
    Rendered,
    Scheduled,
    Suppressed,
)
from shared.fold import fold
from shared.mailbox import Mailbox
from shared.scheduling import CancelCommand, Due, RescheduleCommand, at_header
from shared.suppression_rules import Entry

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CTX = CommandContext(subject="mail.cmd.send", seq=3, stored_at=NOW,
                     default_sender=Mailbox(email="noreply@example.com"),
                     templates=frozenset(), max_schedule=3600)  # fmt: skip


def send(send_at: datetime | None) -> Event:
    command = {"to": "a@example.com", "subject": "s", "text": "t", "message_id": "m1"}
    if send_at is not None:
        command["send_at"] = send_at.isoformat()
    return decide(json.dumps(command).encode(), CTX).event


def scheduled() -> Scheduled:
    event = send(NOW + timedelta(minutes=5))
    assert isinstance(event, Scheduled)
    return event


def test_send_at_ahead_is_scheduled_past_sends_now_too_far_is_rejected() -> None:
    event = scheduled()
    assert event.send_at == NOW + timedelta(minutes=5)
    assert event.accepted.message_id == "m1"
    assert isinstance(send(NOW - timedelta(minutes=5)), Accepted)
    assert isinstance(send(None), Accepted)
    far = send(NOW + timedelta(hours=2))
    assert isinstance(far, Rejected) and "JETPOST_MAX_SCHEDULE" in far.reason
    naive = decide(b'{"to": "a@example.com", "subject": "s", "text": "t",'
                   b' "send_at": "2026-01-01T10:00:00"}', CTX).event  # fmt: skip
    assert isinstance(naive, Rejected) and "time zone" in naive.reason
    assert fold([event]).status == "scheduled" and fold([event]).send_at == event.send_at


def test_cancel_decisions() -> None:
    event = scheduled()
    command = CancelCommand(message_id="m1")
    change = cancel.decide(command, [(1, event)])
    assert change.status == "cancelled" and change.event is not None and change.drop_schedule
    assert cancel.decide(command, []).refused == "not-found"
    assert cancel.decide(command, [(1, event), (2, change.event)]).event is None  # twice: 200
    accepted = event.accepted
    attempted = Attempted(event_id="x", message_id="m1", attempt=1, provider="smtp")
    deferred = Deferred(event_id="d", message_id="m1", attempt=1, provider="smtp",
                        response="451", retry_in=30)  # fmt: skip
    assert cancel.decide(command, [(1, accepted), (2, attempted), (3, deferred)]).event
    sending = cancel.decide(command, [(1, accepted), (2, attempted)])
    assert (sending.refused, sending.status) == ("conflict", "sending")
    delivered = Delivered(event_id="y", message_id="m1", attempt=1, provider="smtp")
    done = cancel.decide(command, [(1, accepted), (2, attempted), (3, delivered)])
    assert (done.refused, done.status) == ("conflict", "delivered")


def test_reschedule_decisions_and_due_revisions() -> None:
    event = scheduled()
    later = NOW + timedelta(minutes=30)
    change = reschedule.decide(RescheduleCommand(message_id="m1", send_at=later), [(1, event)])
    assert change.event is not None and change.schedule is not None
    assert change.schedule.revision == change.event.event_id and change.schedule.send_at == later
    history: list[Event] = [event, change.event]
    same = reschedule.decide(RescheduleCommand(message_id="m1", send_at=later),
                             [(1, event), (2, change.event)])  # fmt: skip
    assert same.event is None and same.refused is None

    old = Due(message_id="m1", revision=event.event_id, send_at=event.send_at)
    new = Due(message_id="m1", revision=change.event.event_id, send_at=later)
    unknown = Due(message_id="m1", revision="not-yet", send_at=later)
    assert isinstance(on_due(history, old, later), Drop)  # replaced by the reschedule
    assert isinstance(on_due(history, unknown, later), Wait)  # its event comes later
    released = on_due(history, new, later)
    assert isinstance(released, Release)
    assert released.accepted.occurred_at == later and released.accepted.message_id == "m1"
    assert isinstance(on_due([*history, released.accepted], new, later), Drop)  # once
    rendered_ = Rendered(event_id="r", message_id="m1", envelope=event.accepted.envelope,
                         subject="s")  # fmt: skip
    refused = reschedule.decide(RescheduleCommand(message_id="m1", send_at=later),
                                [(1, event.accepted), (2, rendered_)])  # fmt: skip
    assert refused.refused == "conflict" and refused.status == "rendered"


def test_at_header_is_utc_rfc3339() -> None:
    when = datetime(2026, 12, 24, 9, 0, tzinfo=UTC) + timedelta(microseconds=5)
    assert at_header(when) == "@at 2026-12-24T09:00:00.000005Z"


def test_suppressed_at_release_adds_to_what_intake_left_out() -> None:
    send_at = (NOW + timedelta(minutes=5)).isoformat()
    command = {"to": ["a@example.com", "b@example.com", "c@example.com"], "subject": "s",
               "text": "t", "message_id": "m2", "send_at": send_at}  # fmt: skip
    event = decide(json.dumps(command).encode(), CTX).event
    assert isinstance(event, Scheduled)
    at_intake = without_suppressed(event.accepted, {"a@example.com": entry("a@example.com")})
    assert isinstance(at_intake, Accepted) and at_intake.suppressed == ("a@example.com",)
    released = at_intake.model_copy(update={"causation_id": event.event_id})
    later = without_suppressed(released, {"b@example.com": entry("b@example.com")})
    assert isinstance(later, Accepted)
    assert [m.email for m in later.envelope.to] == ["c@example.com"]
    assert later.suppressed == ("a@example.com", "b@example.com")
    nobody = without_suppressed(later, {"c@example.com": entry("c@example.com")})
    assert isinstance(nobody, Suppressed) and nobody.causation_id == event.event_id
    assert fold([event, nobody]).status == "suppressed"


def entry(address: str) -> Entry:
    return Entry(address=address, reason="hard bounce", source="feedback", created_at=NOW)
