"""Only real addresses become a bounce's recipient."""

from __future__ import annotations

import pytest

from services.feedback.addresses import addresses_in, valid_address


@pytest.mark.parametrize(
    ("value", "expected"),
    [("bob@example.com", "bob@example.com"), ("<bob@Example.COM>", "bob@example.com"),
     ("rfc822; John Doe <john@example.com>", "john@example.com"),
     ("rfc822;<x@example.org>", "x@example.org"), ('"x@example.org"', "x@example.org"),
     ("system;<>", None), ("LOCAL;<f.b>", None), ("f.b", None), ("", None), (None, None),
     ("user@localhost", None), ("a b@example.com", None), ("x@[192.0.2.1]", None),
     ("/C=US/ADMD=ATTMAIL/S=Doe/", None)],
)  # fmt: skip
def test_valid_address(value: str | None, expected: str | None) -> None:
    assert valid_address(value) == expected


def test_addresses_in_text() -> None:
    text = "<a@example.com>: unknown\n(expanded from b@example.org); not c@localhost"
    assert addresses_in(text) == ["a@example.com", "b@example.org"]
