"""`smtp_commands.wire_form` is aiosmtplib's own DATA transformation (line endings made
CRLF, a final one added, leading dots doubled, a lone dot after), with a shortcut for
mail already in that form: equal on generated messages made of the bytes that
matter."""

from __future__ import annotations

from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.sender.smtp_commands import wire_form


def aiosmtplib_form(message: bytes) -> bytes:
    """What aiosmtplib's `SMTPProtocol.execute_data_command` writes after DATA."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"


_pieces = st.sampled_from([b"a", b"\xc3\xa9", b" ", b".", b"..", b"\r", b"\n", b"\r\n"])
MESSAGES = st.lists(_pieces, max_size=40).map(b"".join)
CRLF_MESSAGES = st.lists(st.sampled_from([b"a", b".", b"\r\n", b".\r\n"]), max_size=40).map(
    b"".join
)


@settings(max_examples=2000, deadline=None)
@given(MESSAGES | CRLF_MESSAGES)
@example(b"")
@example(b".")
@example(b"\r\n.\r\n")
@example(b"a\r\n")
@example(b"a\n\r")
@example(b"a\r\r\n\n")
@example(b"a\r\n\r")
def test_wire_form_is_what_aiosmtplib_sends(message: bytes) -> None:
    assert wire_form(message) == aiosmtplib_form(message)
