"""The sender's decision after an SMTP outcome, pure."""

from __future__ import annotations

from services.sender.logic import decide_outcome, enhanced_status
from services.sender.outcome import Outcome
from shared.events import Envelope, Rendered
from shared.mailbox import Mailbox
from shared.settings import Settings

SETTINGS = Settings(retry_base=10, retry_max=100, max_attempts=4)
RENDERED = Rendered(
    event_id="e", message_id="m", subject="s", text="t",
    envelope=Envelope(sender=Mailbox(email="a@example.com"), to=(Mailbox(email="b@example.com"),)),
)  # fmt: skip


def test_delivered_is_final() -> None:
    events, delay = decide_outcome(RENDERED, Outcome("delivered", 250, "OK", {}), 1, SETTINGS)
    assert [e.type for e, _ in events] == ["delivered"] and delay is None


def test_deferred_backs_off_exponentially_with_a_cap() -> None:
    delays = []
    for attempt in (1, 2, 3):
        events, delay = decide_outcome(
            RENDERED, Outcome("deferred", 451, "later", {}), attempt, SETTINGS
        )
        assert [(e.type, n) for e, n in events] == [("deferred", attempt)]
        delays.append(delay)
    assert delays == [10, 20, 40]


def test_last_attempt_fails() -> None:
    events, delay = decide_outcome(RENDERED, Outcome("deferred", 451, "later", {}), 4, SETTINGS)
    assert [e.type for e, _ in events] == ["failed"] and delay is None


def test_bounce_carries_code_and_enhanced_status() -> None:
    outcome = Outcome("bounced", 550, "5.1.1 <b@example.com>: no such user", {})
    events, delay = decide_outcome(RENDERED, outcome, 1, SETTINGS)
    bounced = events[0][0]
    assert bounced.type == "bounced" and delay is None
    assert getattr(bounced, "status", None) == "5.1.1"
    assert getattr(bounced, "recipients", None) == ("b@example.com",)


def test_all_circuits_open_never_fails() -> None:
    outcome = Outcome("deferred", None, "all open", connection=True, provider="none")
    events, delay = decide_outcome(RENDERED, outcome, 9, SETTINGS, unrouted_retry=3.0)
    assert [e.type for e, _ in events] == ["deferred"] and delay == 3.0


def test_outcome_names_provider_and_host() -> None:
    outcome = Outcome("delivered", 250, "OK", provider="mx", host="mx1.example.com")
    [(delivered, _)], _ = decide_outcome(RENDERED, outcome, 1, SETTINGS)
    assert (getattr(delivered, "provider", None), getattr(delivered, "host", None)) == (
        "mx",
        "mx1.example.com",
    )


def test_enhanced_status() -> None:
    assert enhanced_status("4.7.0 greylisted") == "4.7.0"
    assert enhanced_status("no code here") is None
