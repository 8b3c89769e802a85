"""fast_qp encodes text parts exactly as the `email` package does: the same transfer
encoding chosen, the same characters, on the shapes it takes fast and the others; and
fast_mime writes its Date header as the `email` package does."""

from __future__ import annotations

from datetime import UTC, datetime
from email.contentmanager import _encode_text  # type: ignore[attr-defined]
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.sender.fast_mime import rfc_date
from services.sender.fast_qp import encode_text
from services.sender.mime import POLICY

# Characters that make QP's line breaking and quoting choices differ: `=` beside a
# break, whitespace at line ends, long runs, CR/LF, non-ASCII, controls.
_PIECES = st.sampled_from(["=", " ", "\t", "\n", "\r\n", "\r", "a", "b=c", "é", "\x0b", "\x1c",
                           "€", "=3D", "x" * 70, "y" * 77, 'style="a: b;"'])  # fmt: skip
TEXTS = st.lists(_PIECES, max_size=60).map("".join) | st.text(max_size=400)

HTML = (
    '<p style="margin: 0 0 12px; font-size: 15px; line-height: 1.5; color: #374151;">'
    "Your account is ready. We're glad to have you on board.</p>\n"
) * 12


@given(TEXTS)
def test_text_parts_are_encoded_as_the_email_package_encodes_them(text: str) -> None:
    assert encode_text(text, POLICY) == _encode_text(text, "utf-8", None, POLICY)


@given(TEXTS, st.sampled_from([4, 5, 20, 76, 78]))
def test_any_line_length(text: str, width: int) -> None:
    policy = POLICY.clone(max_line_length=width)
    assert encode_text(text, policy) == _encode_text(text, "utf-8", None, policy)


@pytest.mark.parametrize("text", [
    HTML, HTML.replace("ready", "ready  \t"), HTML + "é" * 50, "=" * 200 + "\n", "short\n", "",
    # whitespace ending a line (quoted, with a soft break where there is no room)
    *(HTML + "x" * n + end + "\n" for n in (74, 75, 76, 77, 78, 79) for end in (" ", "\t")),
    *("x" * n + "=" + "y" * 90 + "\n" for n in (74, 75, 76, 77)),  # an escape at a break
    "é" * 400 + "\n",  # base64 chosen
])  # fmt: skip
def test_typical_parts(text: str) -> None:
    cte, data = encode_text(text, POLICY)
    assert (cte, data) == _encode_text(text, "utf-8", None, POLICY)
    if text.startswith(HTML):  # long lines, more than ten of them
        assert cte == "quoted-printable"


@given(st.datetimes(timezones=st.timezones()))
def test_the_date_header_is_format_datetime_in_utc(moment: datetime) -> None:
    assert rfc_date(moment) == format_datetime(moment.astimezone(UTC))
