"""The sender's MAIL FROM / RCPT TO skip aiosmtplib's address parse only for plain
addresses: on every one of them aiosmtplib would send exactly `<address>`."""

from __future__ import annotations

import pytest
from aiosmtplib.email import quote_address
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.address_fast import PLAIN_ADDRESS as PLAIN  # what the envelope sends directly

ATEXT = "abzAZ09!#$%&'*+/=?^_`{|}~-"
_atoms = st.lists(st.text(ATEXT, min_size=1, max_size=8), min_size=1, max_size=4).map(".".join)
_labels = st.lists(st.text("az09-AZ", min_size=1, max_size=8), min_size=1, max_size=4)
PLAIN_ADDRESSES = st.tuples(_atoms, _labels.map(".".join)).map("@".join)


@settings(max_examples=500, deadline=None)
@given(PLAIN_ADDRESSES | st.from_regex(PLAIN, fullmatch=True))
def test_a_plain_address_is_quoted_as_aiosmtplib_quotes_it(address: str) -> None:
    if not PLAIN.fullmatch(address):  # from_regex may end a match with a newline
        return
    assert quote_address(address) == f"<{address}>"


@pytest.mark.parametrize(
    "address",
    [
        '"john doe"@example.com',  # quoted local part: aiosmtplib's parse keeps the quotes
        "jörg@example.com",  # UTF-8 (SMTPUTF8)
        "a@b.com\r\nRCPT TO:<x@y.com>",  # an injection: aiosmtplib refuses it
        "a@b.com x",
        "<a@b.com>",
        "a..b@example.com",
        ".a@example.com",
        "a@",
        "@example.com",
    ],
)
def test_anything_else_goes_through_aiosmtplib(address: str) -> None:
    assert PLAIN.fullmatch(address) is None
