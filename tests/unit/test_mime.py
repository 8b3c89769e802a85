"""build_message and the SMTP envelope: headers, parts, Bcc, header injection."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage, MIMEPart

import pytest

from services.sender.mime import build_message, envelope_recipients, envelope_sender
from shared.events import Envelope, Rendered
from shared.mailbox import Mailbox

NOW = datetime(2026, 5, 9, 7, 30, tzinfo=UTC)


def rendered(**changes: object) -> Rendered:
    fields: dict[str, object] = {
        "event_id": "e1",
        "message_id": "m1",
        "envelope": Envelope(
            sender=Mailbox(email="noreply@jetpost.test", name="Jetpost"),
            to=(Mailbox(email="alice@example.com", name="Alice Ä"),),
            cc=(Mailbox(email="carol@example.com"),),
            bcc=(Mailbox(email="bob@example.com"),),
        ),
        "subject": "Hello Ünïcode",
        "text": "hi Alice\n",
        "html": "<p>hi Alice</p>\n",
        "headers": {"Message-ID": "<m1@jetpost.test>", "X-Campaign": "spring"},
    }
    fields.update(changes)
    return Rendered.model_validate(fields)


def reparse(msg: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body(part: MIMEPart) -> str:
    """A part's text with the wire's CRLF turned back into newlines."""
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


async def test_headers_and_alternative_parts() -> None:
    msg = reparse(build_message(rendered(), now=NOW))
    assert msg["From"] == "Jetpost <noreply@jetpost.test>"
    assert msg["To"] == "Alice Ä <alice@example.com>"
    assert msg["Cc"] == "carol@example.com"
    assert msg["Bcc"] is None
    assert msg["Subject"] == "Hello Ünïcode"
    assert msg["Date"] == "Sat, 09 May 2026 07:30:00 +0000"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Message-ID"] == "<m1@jetpost.test>"
    assert msg["X-Campaign"] == "spring"
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    assert [body(part) for part in parts] == ["hi Alice\n", "<p>hi Alice</p>\n"]


async def test_wire_form_uses_crlf_only() -> None:
    raw = build_message(rendered(), now=NOW).as_bytes()
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")


@pytest.mark.parametrize(
    ("text", "html", "content_type"),
    [("only text", None, "text/plain"), (None, "<b>only html</b>", "text/html")],
)
async def test_single_part(text: str | None, html: str | None, content_type: str) -> None:
    msg = reparse(build_message(rendered(text=text, html=html), now=NOW))
    assert msg.get_content_type() == content_type
    assert not msg.is_multipart()
    assert body(msg).rstrip("\n") == (text or html)


async def test_no_body_at_all_is_an_empty_text_part() -> None:
    msg = reparse(build_message(rendered(text=None, html=None), now=NOW))
    assert msg.get_content_type() == "text/plain"


async def test_utf8_body_round_trips() -> None:
    msg = reparse(build_message(rendered(text="Grüße 日本\n", html=None), now=NOW))
    assert body(msg) == "Grüße 日本\n"


async def test_headers_from_the_render_step_win_for_date_and_reply_to() -> None:
    envelope = rendered().envelope.model_copy(
        update={"reply_to": (Mailbox(email="help@jetpost.test"),)}
    )
    plain = reparse(build_message(rendered(envelope=envelope), now=NOW))
    assert plain["Reply-To"] == "help@jetpost.test"
    headers = {"Date": "Fri, 01 May 2026 00:00:00 +0000", "Reply-To": "desk@jetpost.test"}
    msg = reparse(build_message(rendered(envelope=envelope, headers=headers), now=NOW))
    assert msg.get_all("Date") == ["Fri, 01 May 2026 00:00:00 +0000"]
    assert msg.get_all("Reply-To") == ["desk@jetpost.test"]


async def test_owned_headers_in_rendered_headers_are_dropped() -> None:
    headers = {"Bcc": "spy@evil.test", "From": "x@evil.test", "Content-Type": "text/x"}
    msg = reparse(build_message(rendered(headers=headers), now=NOW))
    assert msg["Bcc"] is None
    assert msg.get_all("From") == ["Jetpost <noreply@jetpost.test>"]
    assert msg.get_content_type() == "multipart/alternative"


@pytest.mark.parametrize(
    "changes",
    [
        {"subject": "hi\r\nBcc: spy@evil.test"},
        {"subject": "hi\nBcc: spy@evil.test"},
        {"headers": {"X-Note": "a\r\nBcc: spy@evil.test"}},
        {"headers": {"X-Note: a\r\nBcc": "spy@evil.test"}},
        {"headers": {"X Note": "a"}},
    ],
)
async def test_header_injection_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build_message(rendered(**changes), now=NOW)


async def test_envelope_addresses() -> None:
    assert envelope_sender(rendered()) == "noreply@jetpost.test"
    mid = rendered().message_id
    assert (
        envelope_sender(rendered(), "Bounces.Example.com") == f"bounces+{mid}@bounces.example.com"
    )
    envelope = Envelope(
        sender=Mailbox(email="a@b.c"),
        to=(Mailbox(email="x@y.z"), Mailbox(email="w@y.z")),
        cc=(Mailbox(email="X@y.z"), Mailbox(email="v@y.z")),
        bcc=(Mailbox(email="w@y.z"), Mailbox(email="u@y.z")),
    )
    recipients = envelope_recipients(rendered(envelope=envelope))
    assert recipients == ["x@y.z", "w@y.z", "v@y.z", "u@y.z"]
