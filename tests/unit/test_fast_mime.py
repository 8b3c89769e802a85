"""The fast path writes the very bytes the `email` package writes (but for the
boundary, which it derives from the content), and leaves every other shape to it."""

from __future__ import annotations

import email
import email.policy
import random
import re
from typing import Any

import pytest

from services.sender.fast_mime import fast_bytes
from services.sender.mime import build_message
from shared.attachments import AttachmentRef
from shared.events import Envelope, Rendered
from shared.mailbox import Mailbox
from tests.unit.test_mime import rendered as mime_rendered

BOUNDARY = re.compile(rb'boundary="(={15}\d{19}==)"')


ASCII: dict[str, object] = {  # test_mime's message, with what the fast path takes
    "envelope": Envelope(
        sender=Mailbox(email="noreply@jetpost.test", name="Jetpost"),
        to=(Mailbox(email="alice@example.com", name="Alice Smith"),),
        cc=(Mailbox(email="carol@example.com"),),
        bcc=(Mailbox(email="bob@example.com"),),
    ),
    "subject": "Welcome to jetpost, Alice!",
    "text": "Hi Alice,\n\nYour account is ready.\n",
    "html": '<p style="margin: 0 0 12px; font-size: 15px; line-height: 1.5; color: #374151;">'
    "Hi Alice, your account is ready &amp; waiting.</p>\n",
    "headers": {
        "Message-ID": "<m1@jetpost.test>",
        "X-Jetpost-Message-Id": "m1",
        "List-Unsubscribe": f"<https://jetpost.test/u/{'t' * 90}>, <mailto:u@jetpost.test>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    },
}


def rendered(**changes: object) -> Rendered:
    return mime_rendered(**{**ASCII, **changes})


def slow_bytes(r: Rendered, fast: bytes) -> bytes:
    """The email package's bytes, with its random boundary replaced by the fast one."""
    slow = build_message(r).as_bytes()
    ours, theirs = BOUNDARY.search(fast), BOUNDARY.search(slow)
    if ours is None or theirs is None:
        return slow
    return slow.replace(theirs.group(1), ours.group(1))


def lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")


SHAPES: dict[str, dict[str, Any]] = {
    "text and html": {},
    "text only": {"html": None},
    "html only": {"text": None},
    "neither part": {"text": None, "html": None},
    "utf-8 body": {"text": "Grüße, Алиса!\n" * 3, "html": "<p>Grüße</p>"},
    "long lines": {"text": "word " * 60, "html": "<p>" + "x" * 300 + "</p>"},
    "cyrillic, long": {"text": "Привет " * 40, "html": None},
    "crlf in body": {"text": "a\r\nb\rc\n", "html": "<b>x</b>\r\n"},
    "no names": {"envelope": Envelope(sender=Mailbox(email="a@jetpost.test"),
                                      to=(Mailbox(email="b@example.com"),))},
    "reply-to and two recipients": {"envelope": Envelope(
        sender=Mailbox(email="a@jetpost.test", name="Shop"),
        to=(Mailbox(email="b@example.com", name="B"), Mailbox(email="c@example.com")),
        reply_to=(Mailbox(email="help@jetpost.test", name="Help Desk"),))},
}  # fmt: skip


@pytest.mark.parametrize("shape", SHAPES)
def test_fast_path_writes_the_email_packages_bytes(shape: str) -> None:
    r = rendered(**SHAPES[shape])
    fast = fast_bytes(r)
    assert fast is not None, "this shape has a fast path"
    assert fast == slow_bytes(r, fast)
    parsed = email.message_from_bytes(fast, policy=email.policy.default)
    assert parsed["Subject"] == r.subject
    for part, want in (("plain", r.text), ("html", r.html)):
        if want:  # parsed back, each part is what was rendered (line ends aside)
            body = parsed.get_body((part,))
            assert body is not None
            assert lines(body.get_content()) == lines(want)


def test_the_same_event_gives_the_same_bytes() -> None:
    assert fast_bytes(rendered()) == fast_bytes(rendered())
    assert fast_bytes(rendered()) != fast_bytes(rendered(message_id="m2"))


OTHER_SHAPES: dict[str, dict[str, Any]] = {
    "non-ascii subject": {"subject": "Hello Ünïcode"},
    "long subject": {"subject": "word " * 20 + "end"},
    "double space": {"subject": "a  b"},
    "encoded word": {"subject": "=?utf-8?q?x?="},
    "name needs quoting": {"envelope": Envelope(
        sender=Mailbox(email="a@jetpost.test", name="J. Doe"),
        to=(Mailbox(email="b@example.com"),))},
    "non-ascii name": {"envelope": Envelope(sender=Mailbox(email="a@jetpost.test", name="Zoë"),
                                            to=(Mailbox(email="b@example.com"),))},
    "utf-8 local part": {"envelope": Envelope(sender=Mailbox(email="a@jetpost.test"),
                                              to=(Mailbox(email="zoë@example.com"),))},
    "structured header": {"headers": {"In-Reply-To": "<x@y>"}},
    "odd message id": {"headers": {"Message-ID": "not an id"}},
    "attachment": {"attachments": (AttachmentRef(filename="a.txt", content_type="text/plain",
                                                 object="0" * 64, size=1),)},
}  # fmt: skip


@pytest.mark.parametrize("shape", OTHER_SHAPES)
def test_other_shapes_are_left_to_the_email_package(shape: str) -> None:
    assert fast_bytes(rendered(**OTHER_SHAPES[shape])) is None


def test_random_ascii_mail_is_the_same_either_way() -> None:
    rng = random.Random(15)
    alphabet = "abcdefghij KLMNOP,.;:!?<>&=-_'\"()[]{}0123456789\n\t"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 400)))
        html = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 400)))
        subject = " ".join("w" * rng.randrange(1, 12) for _ in range(rng.randrange(1, 8)))
        r = rendered(text=text or None, html=html or None, subject=subject)
        fast = fast_bytes(r)
        if fast is not None:
            assert fast == slow_bytes(r, fast)
