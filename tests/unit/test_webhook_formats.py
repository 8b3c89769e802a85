"""Provider webhooks into feedback items (generic JSON; SES notifications and events
from realistic fixtures), items into events, and the dedup ids that make a report
delivered twice the same events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.feedback.webhook_formats import (
    DELIVERY_N,
    FeedbackItem,
    FormatError,
    event_for,
    parse_generic,
    parse_ses,
    resolve,
    unmatched,
)
from shared.events import Bounced, Complained, Delivered, FeedbackUnmatched, parse_event

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
DOMAIN = "jetpost.test"
NOW = datetime(2025, 5, 8, 12, 0, tzinfo=UTC)


def ses(name: str) -> str:
    return (FIXTURES / name).read_text()


def generic(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def test_ses_permanent_bounce() -> None:
    (item,) = parse_ses(ses("ses_bounce_permanent.json"), notification_id="sns-1").items
    assert (item.kind, item.bounce_kind) == ("bounce", "hard")
    assert (item.status, item.smtp_code) == ("5.1.1", 550)
    assert item.recipients == ("alice@example.com",)
    assert item.diagnostic.startswith("smtp; 550 5.1.1 <alice@example.com>")
    assert item.provider_event_id.endswith("-000000/alice@example.com")
    assert item.occurred_at == datetime(2025, 5, 6, 9, 15, 32, 117000, tzinfo=UTC)
    assert resolve(item, DOMAIN) == "ses-bounce-1"  # X-Jetpost-Message-Id

    event, n = event_for(item, "ses-bounce-1", "corr-1", NOW)
    assert isinstance(event, Bounced)
    assert (event.kind, event.status, event.smtp_code, event.source, event.provider) == (
        "hard", "5.1.1", 550, "webhook", "ses")  # fmt: skip
    assert event.recipients == ("alice@example.com",) and event.response == item.diagnostic
    assert event.correlation_id == "corr-1" and event.occurred_at == item.occurred_at
    assert event.provider_event_id == item.provider_event_id
    assert n > DELIVERY_N
    assert parse_event(event.model_dump_json()) == event


def test_ses_event_publishing_transient_bounce_per_recipient() -> None:
    items = parse_ses(ses("ses_event_bounce_transient.json"), notification_id="sns-2").items
    assert [i.recipients for i in items] == [("Bob@Example.org",), ("carol@example.org",)]
    assert {(i.bounce_kind, i.status, i.smtp_code) for i in items} == {("soft", "4.2.2", 452)}
    # No X-Jetpost-Message-Id: the Message-ID of our domain names the message.
    assert {resolve(i, DOMAIN) for i in items} == {"ses-soft-1"}
    assert resolve(items[0], "other.example") is None
    events = [event_for(i, "ses-soft-1", None, NOW) for i in items]
    assert len({e.event_id for e, _ in events}) == 2 and len({n for _, n in events}) == 2


def test_ses_complaint_matched_by_common_headers() -> None:
    (item,) = parse_ses(ses("ses_complaint.json"), notification_id="sns-3").items
    assert (item.kind, item.recipients, item.feedback_type) == (
        "complaint", ("alice@example.com",), "abuse")  # fmt: skip
    assert resolve(item, DOMAIN) == "ses-complaint-1"
    event, _ = event_for(item, "ses-complaint-1", None, NOW)
    assert isinstance(event, Complained)
    assert (event.recipient, event.source, event.feedback_type) == (
        "alice@example.com", "webhook", "abuse")  # fmt: skip


def test_ses_delivery() -> None:
    (item,) = parse_ses(ses("ses_delivery.json"), notification_id="sns-4").items
    assert (item.kind, item.recipients, item.smtp_code) == ("delivery", ("alice@example.com",), 250)
    event, n = event_for(item, "ses-bounce-1", None, NOW)
    assert isinstance(event, Delivered)
    assert (event.provider, event.attempt, event.smtp_code, n) == ("ses", 0, 250, DELIVERY_N)
    assert event.response == "250 2.6.0 Message received"


def test_ses_types_not_recorded_are_named() -> None:
    opened = parse_ses(ses("ses_event_open.json"), notification_id="sns-5")
    assert opened.items == () and "Open" in opened.ignored[0]
    hello = json.dumps({"notificationType": "AmazonSnsSubscriptionSucceeded", "message": "hi"})
    assert parse_ses(hello, notification_id="sns-6").ignored


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[]",
        json.dumps({"notificationType": "Bounce"}),
        json.dumps({"notificationType": "Bounce", "mail": {}, "bounce": {"bouncedRecipients": []}}),
        json.dumps({"notificationType": "Complaint", "mail": {}, "complaint": "x"}),
    ],
)
def test_malformed_ses_is_a_format_error(message: str) -> None:
    with pytest.raises(FormatError):
        parse_ses(message, notification_id="sns-7")


def test_the_same_report_gives_the_same_events() -> None:
    first = parse_ses(ses("ses_bounce_permanent.json"), notification_id="sns-a").items[0]
    # SNS redelivers with the same MessageId; the same SES event via another topic has
    # another one: the feedbackId is what names the report.
    again = parse_ses(ses("ses_bounce_permanent.json"), notification_id="sns-b").items[0]
    assert first.dedup_key == again.dedup_key
    e1, n1 = event_for(first, "m1", None, NOW)
    e2, n2 = event_for(again, "m1", None, NOW + timedelta(hours=1))
    assert (e1.event_id, n1) == (e2.event_id, n2)
    other = FeedbackItem(provider="generic", provider_event_id=first.provider_event_id,
                         kind="bounce", bounce_kind="hard")  # fmt: skip
    assert other.dedup_key != first.dedup_key  # ids are per provider


def test_generic_batch_fixture() -> None:
    parsed = parse_generic((FIXTURES / "generic_batch.json").read_bytes())
    bounce, complaint, delivery = parsed.items
    assert (bounce.kind, bounce.bounce_kind, bounce.status, bounce.smtp_code) == (
        "bounce", "hard", "5.1.1", 550)  # fmt: skip
    assert resolve(bounce, DOMAIN) == "gen-1"
    assert resolve(complaint, DOMAIN) == "gen-2"
    assert complaint.occurred_at == datetime(2025, 5, 6, 7, 16, tzinfo=UTC)
    assert (delivery.kind, delivery.smtp_code, resolve(delivery, DOMAIN)) == ("delivery", 250,
                                                                              "gen-3")  # fmt: skip


def test_generic_bounce_kind_from_status() -> None:
    base = {"id": "e1", "type": "bounce", "message_id": "m1", "recipient": "a@example.com"}
    (soft,) = parse_generic(generic({**base, "status": "4.2.2"})).items
    (hard,) = parse_generic(generic({**base, "status": "5.7.1"})).items
    (naive,) = parse_generic(generic({**base, "bounce_type": "soft",
                                      "timestamp": "2025-05-06T09:00:00"})).items  # fmt: skip
    assert (soft.bounce_kind, hard.bounce_kind, naive.bounce_kind) == ("soft", "hard", "soft")
    assert naive.occurred_at == datetime(2025, 5, 6, 9, tzinfo=UTC)


BOUNCE = {"id": "e", "type": "bounce", "message_id": "m", "recipient": "a@example.com"}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "Invalid JSON"),
        (b"[1, 2]", "an object"),
        (b"{}", "events"),
        (generic(), "at least 1"),
        (generic({**BOUNCE, "message_id": None, "bounce_type": "hard"}), "smtp_message_id"),
        (generic(BOUNCE), "bounce_type"),
        (generic({**BOUNCE, "status": "9.9.9"}), "status"),
        (generic({"id": "e", "type": "complaint", "message_id": "m"}), "recipient"),
        (generic({"id": "e", "type": "opened", "message_id": "m"}), "type"),
        (generic({"id": "e", "type": "delivery", "message_id": "no spaces"}), "message_id"),
        (generic({"id": "e", "type": "delivery", "message_id": "m", "colour": 1}), "colour"),
        (generic({"id": "", "type": "delivery", "message_id": "m"}), "id"),
    ],
)
def test_generic_refuses_malformed_bodies(body: bytes, detail: str) -> None:
    with pytest.raises(FormatError, match=detail):
        parse_generic(body)


def test_timestamps_in_the_future_are_now() -> None:
    item = FeedbackItem(provider="generic", provider_event_id="e", kind="complaint",
                        recipients=("a@example.com",),
                        occurred_at=NOW + timedelta(days=3))  # fmt: skip
    event, _ = event_for(item, "m1", None, NOW)
    assert event.occurred_at == NOW


def test_unmatched_keeps_the_report() -> None:
    (item,) = parse_ses(ses("ses_complaint.json"), notification_id="sns-8").items
    event, n = unmatched(item, "message x not in the log", NOW)
    assert isinstance(event, FeedbackUnmatched) and n == 1
    assert event.kind == "webhook" and event.message_id.startswith("fb-")
    assert "message x not in the log" in event.reason and item.provider_event_id in event.reason
    assert json.loads(event.raw_excerpt)["notificationType"] == "Complaint"
    again, _ = unmatched(item, "message x not in the log", NOW + timedelta(hours=1))
    assert again.event_id == event.event_id
