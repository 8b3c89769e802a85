"""The delivery engine's pure parts: circuit breakers, the router's failover rules
(over in-memory fakes), throttle rules, attempt numbering, multi-domain outcomes,
KumoMTA and HTTP answers, provider URLs."""

from __future__ import annotations

import httpx
import pytest

from services.sender.circuit import CircuitBreaker
from services.sender.dns_lookup import order_mx, parse_resolver
from services.sender.history import is_done, next_attempt
from services.sender.http_client import http_target, status_outcome
from services.sender.kumomta import inject_outcome, inject_request
from services.sender.mailer import Mail
from services.sender.mx import by_domain, combine
from services.sender.outcome import Outcome
from services.sender.routing import ALL_OPEN, Router
from services.sender.throttle_rules import (
    Limit,
    is_slow_down,
    limit_for,
    load_limits,
    parse_rate,
    slowed,
)
from shared.events import Attempted, Deferred, Delivered, Rendered
from shared.mailbox import Mailbox, ascii_domain
from shared.settings import parse_providers

MAIL = Mail(b"Subject: x\r\n\r\nbody\r\n", "a@jetpost.test", ("x@example.com",))


def state(breaker: CircuitBreaker) -> str:
    return breaker.state  # read through a call: mypy would narrow the attribute


def test_circuit_opens_after_threshold_within_window_then_probes_once() -> None:
    breaker = CircuitBreaker(threshold=3, window=10, cooldown=5)
    breaker.failure(0)
    breaker.failure(11)  # the first one has left the window
    breaker.failure(12)
    assert state(breaker) == "closed" and breaker.allow(12)
    breaker.failure(13)
    assert state(breaker) == "open" and not breaker.allow(14)
    assert breaker.retry_in(14) == 4
    assert breaker.allow(18) and state(breaker) == "half_open"
    assert not breaker.allow(18)  # one probe only
    breaker.failure(19)
    assert state(breaker) == "open" and not breaker.allow(20)
    assert breaker.allow(24)
    breaker.success()
    assert state(breaker) == "closed" and breaker.allow(24)


class FakeMailer:
    def __init__(self, name: str, outcomes: list[Outcome]) -> None:
        self.name = name
        self.outcomes = outcomes
        self.sent = 0

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, mail: Mail) -> Outcome:
        self.sent += 1
        return self.outcomes.pop(0) if self.outcomes else Outcome("delivered", 250, "OK")


DOWN = Outcome("deferred", None, "ConnectionRefusedError", connection=True)


async def test_router_fails_over_on_connection_failures_only() -> None:
    now = [0.0]
    changes: list[tuple[str, str]] = []

    async def record(name: str, state: str) -> None:
        changes.append((name, state))

    first = FakeMailer("first", [DOWN, DOWN, Outcome("bounced", 550, "550 5.1.1 unknown")])
    second = FakeMailer("second", [])
    router = Router([first, second], threshold=2, window=10, cooldown=5, on_change=record,
                    clock=lambda: now[0])  # fmt: skip
    assert (await router.send(MAIL)).provider == "second"
    assert (await router.send(MAIL)).provider == "second"
    assert changes == [("first", "open")] and first.sent == 2
    assert (await router.send(MAIL)).provider == "second" and first.sent == 2  # open: skipped
    now[0] = 6.0
    bounced = await router.send(MAIL)  # the half-open probe: a recipient's answer
    assert (bounced.kind, bounced.provider) == ("bounced", "first")  # no failover
    assert changes[-2:] == [("first", "half_open"), ("first", "closed")]


async def test_router_with_every_circuit_open_defers() -> None:
    only = FakeMailer("only", [DOWN])
    router = Router([only], threshold=1, window=10, cooldown=30, clock=lambda: 0.0)
    assert (await router.send(MAIL)).connection
    unrouted = await router.send(MAIL)
    assert (unrouted.kind, unrouted.response, unrouted.provider) == ("deferred", ALL_OPEN, "none")
    assert router.retry_in() == 30 and only.sent == 1


async def test_router_does_not_fail_over_an_uncertain_send() -> None:
    lost = Outcome("deferred", None, "SMTPServerDisconnected", connection=True, uncertain=True)
    first, second = FakeMailer("first", [lost]), FakeMailer("second", [])
    router = Router([first, second], threshold=5, window=10, cooldown=5)
    assert (await router.send(MAIL)).provider == "first" and second.sent == 0


def test_throttle_rules() -> None:
    limits = load_limits(None)
    assert limit_for(limits, "GMAIL.com") == limits["gmail.com"]
    assert limit_for(limits, "example.org") is None
    custom = {"*.corp.example": Limit(count=2), "*": Limit(concurrency=50)}
    assert limit_for(custom, "mx.eu.corp.example") == Limit(count=2)
    assert limit_for(custom, "other.example") == Limit(concurrency=50)
    assert parse_rate("600/min") == (600, 60.0) and parse_rate("5 / h") == (5, 3600.0)
    with pytest.raises(ValueError):
        parse_rate("fast")
    assert slowed(Limit(count=10), 0.25) == Limit(count=2)
    assert limit_for(limits, "mx=gmail-smtp-in.l.google.com") == limits["mx=*.google.com"]
    assert limit_for(custom, "mx=mx.other.example") is None  # `*` is for domains only
    assert is_slow_down(421, "421 4.7.0 Try again later, closing connection")
    assert is_slow_down(451, "451 4.7.1 rate limited, slow down")
    assert not is_slow_down(451, "451 4.7.1 greylisted, come back in 5 minutes")
    assert not is_slow_down(550, "550 too many recipients")


def test_attempts_are_numbered_from_the_log() -> None:
    common = {"event_id": "e", "message_id": "m"}
    assert next_attempt(None) == 1
    assert next_attempt(Attempted(attempt=3, provider="smtp", **common)) == 4
    assert (
        next_attempt(Deferred(attempt=2, provider="smtp", response="451", retry_in=1, **common))
        == 3
    )
    rendered = Rendered(subject="s", envelope={"sender": {"email": "a@b.example"}, "to": []},
                        **common)  # fmt: skip
    assert next_attempt(rendered) == 1 and not is_done(rendered)
    assert is_done(Delivered(attempt=1, provider="smtp", **common))


def test_multi_domain_outcomes() -> None:
    groups = by_domain(("a@One.example", "b@one.example", "c@two.example"))
    assert groups == {
        "one.example": ("a@One.example", "b@one.example"),
        "two.example": ("c@two.example",),
    }
    ok = Outcome("delivered", 250, "OK", host="mx.one")
    later = Outcome("deferred", 451, "451 later", host="mx.two")
    merged = combine(
        {"one.example": (groups["one.example"], ok), "two.example": (groups["two.example"], later)}
    )
    assert merged.kind == "delivered" and merged.refused == {"c@two.example": "451 later"}
    assert merged.host == "mx.one,mx.two"
    bounced = Outcome("bounced", 550, "550 no")
    none_taken = combine({"a": (("x@a",), bounced), "b": (("y@b",), later)})
    assert none_taken.kind == "deferred"


def test_kumomta_request_and_answers() -> None:
    request = inject_request(MAIL)
    assert request["envelope_sender"] == "a@jetpost.test"
    assert request["recipients"] == [{"email": "x@example.com"}]
    assert request["template_dialect"] == "Static" and request["content"].startswith("Subject")
    ok = {"success_count": 1, "fail_count": 0, "failed_recipients": [], "errors": []}
    assert inject_outcome(MAIL, ok).kind == "delivered"
    failed = {"success_count": 0, "fail_count": 1, "failed_recipients": ["x@example.com"],
              "errors": ["x@example.com: rejected"]}  # fmt: skip
    outcome = inject_outcome(MAIL, failed)
    assert outcome.kind == "bounced" and "rejected" in outcome.response


@pytest.mark.parametrize(
    ("status", "kind", "connection"),
    [(200, None, None), (202, None, None), (400, "bounced", False), (422, "bounced", False),
     (401, "deferred", True), (429, "deferred", True), (500, "deferred", True),
     (503, "deferred", True), (302, "deferred", True)],
)  # fmt: skip
def test_http_status_mapping(status: int, kind: str | None, connection: bool | None) -> None:
    outcome = status_outcome(httpx.Response(status, text="x"))
    assert (outcome.kind, outcome.connection) if outcome else (kind, connection) == (None, None)


def test_provider_urls() -> None:
    url, auth = http_target("kumomta+https://user:p%40ss@kumo.example:8000")
    assert url == "https://kumo.example:8000" and auth is not None
    assert http_target("http+json://hooks.example/mail")[0] == "http://hooks.example/mail"
    with pytest.raises(ValueError, match="expected one of"):
        parse_providers("ftp://x")
    with pytest.raises(ValueError, match="repeat"):
        parse_providers("smtp://a:25#x,smtp://b:25#x")
    assert parse_resolver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_resolver("[::1]:53") == ("::1", 53) and parse_resolver("::1") == ("::1", 53)
    assert order_mx([(20, "b"), (10, "z"), (10, "a")]) == ["a", "z", "b"]


def test_idn_addresses() -> None:
    box = Mailbox(email="kunde@bücher.example")
    assert box.smtp_address == "kunde@xn--bcher-kva.example" and not box.needs_smtputf8
    assert Mailbox(email="jörg@example.com").needs_smtputf8
    assert ascii_domain("EXAMPLE.com") == "example.com"
