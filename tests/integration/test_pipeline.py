"""A send command through intake, renderer and sender to a real SMTP sink."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import uuid
from email.message import EmailMessage
from typing import Any

import pytest
from nats.js import JetStreamContext

from services.capture import CaptureSink
from shared.events import Rejected
from shared.settings import Settings
from shared.subjects import CMD_SEND, CMD_STREAM
from tests.conftest import Pipeline
from tests.eventlog_reader import (
    read_all,
    types_of,
    wait_for_any,
    wait_for_count,
    wait_for_event,
)

DONE = ("delivered", "bounced", "failed", "rejected", "render_failed")


async def send(js: JetStreamContext, command: dict[str, Any] | bytes) -> None:
    body = command if isinstance(command, bytes) else json.dumps(command).encode()
    await js.publish(CMD_SEND, body, stream=CMD_STREAM)


def welcome(name: str = "Alice", **extra: Any) -> dict[str, Any]:
    return {
        "to": "Alice <alice@example.com>",
        "template": "welcome",
        "vars": {"name": name},
        "message_id": uuid.uuid4().hex,
        **extra,
    }


def parse_mail(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


async def test_mail_arrives_with_headers_and_both_parts(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    command = welcome(cc=["bob@example.com"], bcc=["carol@example.com"], tags=["onboarding"])
    await send(js, command)
    mid = command["message_id"]
    await wait_for_event(js, mid, "delivered")
    await sink.wait_for(1, timeout=10)
    mail = sink.received[0]
    assert sorted(mail.rcpt_tos) == ["alice@example.com", "bob@example.com", "carol@example.com"]
    msg = parse_mail(mail.data)
    assert msg["To"] == "Alice <alice@example.com>"
    assert msg["Cc"] == "bob@example.com"
    assert msg["Bcc"] is None
    assert msg["From"] == "jetpost tests <noreply@jetpost.test>"
    assert "Alice" in msg["Subject"]
    assert msg["Message-ID"] == f"<{mid}@jetpost.test>"
    assert msg["Date"]
    assert msg.get_content_type() == "multipart/alternative"
    text, html = (msg.get_body(("plain",)), msg.get_body(("html",)))
    assert text is not None and html is not None
    assert "Alice" in text.get_content()
    assert "Alice" in html.get_content() and "style=" in html.get_content()
    assert await types_of(js, mid) == ["accepted", "rendered", "attempted", "delivered"]
    assert list(sink.folder.glob("*.eml")) if sink.folder else True


HOSTILE: list[tuple[bytes | dict[str, Any], str]] = [
    (b"{not json", "invalid JSON"),
    (b"[1, 2]", "JSON object"),
    ({"to": "a@example.com", "template": "welcome", "vars": {}, "colour": "red"}, "colour"),
    ({"to": "not-an-address", "subject": "x", "text": "y"}, "invalid address"),
    ({"to": "a@example.com", "template": "no_such_template"}, "unknown template"),
    ({"to": "a@example.com", "subject": "hi\r\nBcc: victim@example.com", "text": "x"},
     "line break"),
    ({"to": "a@example.com\r\nBcc: v@example.com", "subject": "s", "text": "x"}, "line break"),
    ({"to": "a@example.com", "subject": "s", "text": "x", "headers": {"X-A": "1\nB: 2"}},
     "line break"),
    ({"to": "a@example.com", "subject": "s", "text": "x", "headers": {"Bcc": "v@e.com"}},
     "set by jetpost"),
    ({"to": "a@example.com", "subject": "s"}, "'html' or 'text'"),
    ({"to": "a@example.com", "subject": "s", "text": "x", "message_id": "a.b>"}, "message_id"),
]  # fmt: skip


async def test_malformed_and_hostile_commands_are_rejected_then_good_mail_flows(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    for command, _ in HOSTILE:
        await send(js, command)
    good = welcome()
    await send(js, good)
    await wait_for_event(js, good["message_id"], "delivered")
    # intake works on a fetched batch at once: order by the commands' own sequence
    rejected = [e for e in await read_all(js, "mail.evt.*.rejected") if isinstance(e, Rejected)]
    rejected.sort(key=lambda e: e.command_seq or 0)
    assert len(rejected) == len(HOSTILE)
    for event, (_, expected) in zip(rejected, HOSTILE, strict=True):
        assert event.type == "rejected"
        assert expected in event.reason, event.reason
    assert len(sink.received) == 1
    assert b"victim@example.com" not in sink.received[0].data


async def test_same_idempotency_key_gives_one_message(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    first = welcome(idempotency_key="signup-42")
    again = {**first, "message_id": uuid.uuid4().hex}  # a retry with a fresh id, same key
    other = welcome(name="Mallory", idempotency_key="signup-42")
    for command in (first, again, other):
        await send(js, command)
    rejected = await wait_for_event(js, other["message_id"], "rejected")
    await wait_for_event(js, first["message_id"], "delivered")
    assert "different body" in getattr(rejected, "reason", "")
    accepted = await read_all(js, "mail.evt.*.accepted")
    assert [e.message_id for e in accepted] == [first["message_id"]]
    assert len(sink.received) == 1


async def test_one_new_message_id_in_two_commands_at_once_is_one_message_and_a_rejection(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    """Intake handles both at once: each saw a message without events. The `accepted`
    is appended only if the message still has none, so the second is refused with a
    reason instead of vanishing as a duplicate append."""
    first = welcome()
    other = {**welcome(name="Mallory"), "message_id": first["message_id"]}
    for command in (first, other):
        await send(js, command)
    await wait_for_count(js, 1, "mail.evt.*.rejected")
    await wait_for_event(js, first["message_id"], "delivered")
    [rejected] = await read_all(js, "mail.evt.*.rejected")
    assert "already used by another message" in getattr(rejected, "reason", "")
    accepted = await read_all(js, "mail.evt.*.accepted")
    assert [e.message_id for e in accepted] == [first["message_id"]]
    assert len(sink.received) == 1


async def test_smtp_4xx_is_deferred_then_delivered(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    sink.script(["451 4.3.0 try again later"])
    command = welcome()
    await send(js, command)
    await wait_for_event(js, command["message_id"], "delivered")
    assert await types_of(js, command["message_id"]) == [
        "accepted", "rendered", "attempted", "deferred", "attempted", "delivered",
    ]  # fmt: skip
    assert sink.attempts == 2 and len(sink.received) == 1


async def test_smtp_5xx_bounces_after_one_attempt(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    sink.script(["550 5.1.1 no such user"])
    command = welcome()
    await send(js, command)
    bounced = await wait_for_event(js, command["message_id"], "bounced")
    assert getattr(bounced, "smtp_code", None) == 550
    assert getattr(bounced, "status", None) == "5.1.1"
    assert await types_of(js, command["message_id"]) == [
        "accepted", "rendered", "attempted", "bounced",
    ]  # fmt: skip
    assert sink.attempts == 1 and sink.received == []


async def test_retries_exhausted_is_failed(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    sink.script(["421 4.7.0 busy"] * 3)
    command = welcome()
    await send(js, command)
    failed = await wait_for_event(js, command["message_id"], "failed")
    assert getattr(failed, "attempt", None) == 3
    assert (await types_of(js, command["message_id"])).count("attempted") == 3


async def test_missing_template_variable_is_render_failed(
    pipeline: Pipeline, js: JetStreamContext, sink: CaptureSink
) -> None:
    command = welcome()
    command["vars"] = {}
    await send(js, command)
    event = await wait_for_any(js, command["message_id"], DONE)
    assert event.type == "render_failed"
    assert getattr(event, "missing_variable", None) == "name"
    assert sink.attempts == 0


async def test_log_provider_writes_instead_of_sending(
    settings: Settings, js: JetStreamContext, sink: CaptureSink, caplog: pytest.LogCaptureFixture
) -> None:
    running = Pipeline(settings)
    await running.start(provider="log")
    try:
        command = welcome()
        with caplog.at_level(logging.INFO, logger="jetpost.mail"):
            await send(js, command)
            delivered = await wait_for_event(js, command["message_id"], "delivered")
    finally:
        await running.stop()
    assert getattr(delivered, "provider", None) == "log"
    assert sink.attempts == 0
    assert any(command["message_id"] in r.getMessage() for r in caplog.records)
