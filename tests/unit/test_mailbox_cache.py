"""parse_mailbox keeps its answers for recent addresses: a cached answer is the one a
fresh parse gives, `operator` addresses are kept apart from the others, a refused
address is refused every time, and long inputs are not kept."""

from __future__ import annotations

import pytest

from shared.mailbox import CACHED_LENGTH, _parse_mailbox, _parsed, parse_mailbox


def test_a_repeated_address_is_answered_from_the_cache_as_a_fresh_parse() -> None:
    _parsed.cache_clear()
    first = parse_mailbox("Alice <Alice@Example.COM>")
    again = parse_mailbox("Alice <Alice@Example.COM>")
    assert again is first
    assert again == _parse_mailbox("Alice <Alice@Example.COM>", False)
    assert _parsed.cache_info().hits == 1


def test_operator_addresses_are_cached_apart() -> None:
    _parsed.cache_clear()
    assert parse_mailbox("ops@mail.test", operator=True).email == "ops@mail.test"
    with pytest.raises(ValueError, match="special"):
        parse_mailbox("ops@mail.test")  # a test domain, refused to a caller
    with pytest.raises(ValueError, match="special"):
        parse_mailbox("ops@mail.test")  # and again: errors are not cached


def test_a_long_input_is_parsed_but_not_kept() -> None:
    _parsed.cache_clear()
    raw = f"{'A' * CACHED_LENGTH} <a@example.com>"
    assert parse_mailbox(raw).name == "A" * CACHED_LENGTH
    assert _parsed.cache_info().currsize == 0
