"""intake's decision, pure: given a command's bytes, expect this event."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from services.intake.logic import CommandContext, decide
from shared.commands import SendCommand
from shared.events import Accepted, Rejected
from shared.mailbox import Mailbox

CTX = CommandContext(
    subject="mail.cmd.send",
    seq=7,
    stored_at=datetime(2026, 1, 1, tzinfo=UTC),
    default_sender=Mailbox(email="noreply@example.com", name="jetpost"),
    templates=frozenset({"welcome"}),
)


def run(command: Any) -> Accepted | Rejected:
    raw = command if isinstance(command, bytes) else json.dumps(command).encode()
    event = decide(raw, CTX).event
    assert isinstance(event, Accepted | Rejected)
    return event


def test_valid_template_command_is_accepted_with_defaults() -> None:
    event = run({"to": ["Alice <alice@example.com>", "bob@example.com"], "template": "welcome",
                 "vars": {"name": "Alice"}, "tags": ["signup"]})  # fmt: skip
    assert isinstance(event, Accepted)
    assert [str(m) for m in event.envelope.to] == ["Alice <alice@example.com>", "bob@example.com"]
    assert event.envelope.sender.email == "noreply@example.com"
    assert event.vars == {"name": "Alice"} and event.tags == ("signup",)
    assert event.command_seq == 7


def test_id_without_caller_id_is_stable_for_a_redelivered_command() -> None:
    command = {"to": "a@example.com", "subject": "s", "text": "t"}
    assert run(command).message_id == run(command).message_id


def test_caller_message_id_is_kept() -> None:
    event = run({"to": "a@example.com", "subject": "s", "html": "<p>x</p>", "message_id": "m-1"})
    assert isinstance(event, Accepted) and event.message_id == "m-1"


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (b"\xff\xfe", "invalid JSON"),
        (b'"just a string"', "JSON object"),
        ({"subject": "s", "text": "t"}, "to: Field required"),
        ({"to": [], "subject": "s", "text": "t"}, "at least one"),
        ({"to": "a@example.com", "template": "welcome", "subject": "s"}, "either"),
        ({"to": "a@example.com", "subject": "s", "text": "t", "vars": {"a": 1}},
         "need a 'template'"),
        ({"to": [f"u{i}@example.com" for i in range(51)], "subject": "s", "text": "t"}, "at most"),
        ({"to": "a@example.com", "from": "x@y.com\nBcc: z@y.com", "subject": "s", "text": "t"},
         "line break"),
        ({"to": "a@example.com", "subject": "s", "text": "t", "tags": ["a\rb"]}, "invalid tag"),
        ({"to": "a@example.com", "subject": "s", "text": "t", "headers": {"Bad Name": "v"}},
         "invalid header name"),
        ({"to": "a@example.com", "template": "nope"}, "unknown template"),
    ],
)  # fmt: skip
def test_bad_commands_are_rejected_with_a_reason(command: Any, reason: str) -> None:
    event = run(command)
    assert isinstance(event, Rejected)
    assert reason in event.reason
    assert event.command_subject == "mail.cmd.send" and event.command_seq == 7
    assert event.raw  # the command itself is kept


def test_rejected_keeps_a_usable_caller_id() -> None:
    event = run({"to": "nope", "subject": "s", "text": "t", "message_id": "mine"})
    assert isinstance(event, Rejected) and event.message_id == "mine"


def test_body_hash_ignores_key_and_id_but_not_content() -> None:
    base = {"to": "a@example.com", "subject": "s", "text": "t"}
    one = SendCommand.model_validate({**base, "idempotency_key": "k", "message_id": "a"})
    two = SendCommand.model_validate({**base, "idempotency_key": "k", "message_id": "b"})
    other = SendCommand.model_validate({**base, "text": "u", "idempotency_key": "k"})
    assert one.body_hash() == two.body_hash() != other.body_hash()


def test_cli_send_at_needs_a_zone() -> None:
    from services.cli.send import build_command

    command = build_command(["a@example.com"], None, [], "s", None, "t", None, [], None,
                            send_at="2030-01-01T09:00:00+01:00")  # fmt: skip
    assert command["send_at"] == "2030-01-01T09:00:00+01:00"
    with pytest.raises(ValueError, match="time zone"):
        build_command(["a@example.com"], None, [], "s", None, "t", None, [], None,
                      send_at="2030-01-01T09:00:00")  # fmt: skip
