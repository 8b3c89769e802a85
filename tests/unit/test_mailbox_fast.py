"""parse_mailbox normalizes a plain ASCII address by a fast path of its own: whatever it
accepts, email_validator accepts with the same normalized address (with and without
`test_environment`), it accepts nothing email_validator refuses, and parse_mailbox
gives the same Mailbox or the same error with the fast path as without it."""

from __future__ import annotations

from collections.abc import Sequence
from unittest import mock

import email_validator
import pytest
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from hypothesis import event, given, settings
from hypothesis import strategies as st

from shared.address_fast import plain_normalized
from shared.mailbox import _parse_mailbox

ATEXT = "abzAZ09!#$%&'*+/=?^_`{|}~-"
SPECIAL = ["test", "TEST", "local", "localhost", "invalid", "onion", "arpa", "Arpa"]
TLDS = ["com", "COM", "uk", "io", "a", "example", "1a", "a1", "123", "xn--p1ai", "x-y"]


def _validated(addr: str, operator: bool) -> str | None:
    try:
        return validate_email(
            addr, check_deliverability=False, allow_display_name=False, test_environment=operator
        ).normalized
    except EmailNotValidError:
        return None


def _long(units: Sequence[str], low: int, high: int) -> st.SearchStrategy[str]:
    """One of `units` repeated, cut to a length around a limit."""
    return st.builds(lambda n, u: (u * high)[:n], st.integers(low, high), st.sampled_from(units))


def _mostly(plain: st.SearchStrategy[str], *odd: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """`plain` four times in five, one of `odd` otherwise."""
    return st.integers(0, 4).flatmap(lambda i: st.one_of(*odd) if i == 0 else plain)


_atom = st.text(ATEXT, min_size=1, max_size=6)
_plain_local = st.lists(_atom, min_size=1, max_size=3).map(".".join)
_plain_label = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,8}[A-Za-z0-9])?", fullmatch=True)
_plain_tld = st.sampled_from(["com", "Org", "UK", "io", "example", "museum"])

_names = st.sampled_from(CASE_INSENSITIVE_MAILBOX_NAMES).flatmap(
    lambda n: st.sampled_from([n, n.upper(), n.title()])
)
_odd = st.sampled_from(['"a"', "a b", "zoë", "a\\b", "", "a@b", " a", "a\n", "<a>", "_"])
# Near the subset, each part plain more often than not (so that whole addresses are in
# it often enough, and often just outside): dots in odd places, 64 characters or so,
# the names it lowercases; labels with hyphens at the edges, numeric ones, `--` ones,
# 63 characters or so; special-use, numeric and IDNA top-level labels.


_local = _mostly(
    _plain_local, st.text(ATEXT + ".", max_size=10), _long("a", 60, 68), _long(["ab."], 60, 68),
    _names, _odd,
)  # fmt: skip
_label = _mostly(
    _plain_label, st.text("aZ09-", max_size=8), _long("aZ9-", 58, 66), _long("a", 58, 66),
    st.sampled_from(["xn--bcher-kva", "XN--BCHER-KVA", "xn--zz", "ab--cd", "a_b", "é", ""]),
)  # fmt: skip
_tld = _mostly(_plain_tld, st.sampled_from(SPECIAL), st.sampled_from(TLDS), _label)
_domain = st.builds(lambda ls, tld: ".".join([*ls, tld]), st.lists(_label, max_size=4), _tld)


def _sized(length: int, local: int, tld: str) -> str:
    """An address of about `length` octets, its domain in labels of up to 63."""
    room, labels = length - local - 1 - len(tld), []
    while room > 1:
        labels.append("b" * min(63, room - 1))
        room -= len(labels[-1]) + 1
    return f"{'a' * local}@{'.'.join([*labels, tld])}"


# around the 254 octets of a whole address, the 253 of a domain, the 64 of a local part
_long_addr = st.builds(_sized, st.integers(245, 260), st.integers(1, 66), _tld)
NEAR = st.builds(lambda local, domain: f"{local}@{domain}", _local, _domain) | _long_addr


@settings(max_examples=1500, deadline=None)
@given(NEAR)
def test_the_fast_path_accepts_only_what_email_validator_accepts_as_it_does(addr: str) -> None:
    fast = plain_normalized(addr)
    event("fast path" if fast is not None else "left to email_validator")
    for operator in (False, True):
        if fast is not None:
            assert _validated(addr, operator) == fast, (addr, operator)
        if _validated(addr, operator) is None:
            assert fast is None, (addr, operator)


PLAIN = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join([*labels, tld])}",
    _plain_local.filter(lambda local: local.lower() not in CASE_INSENSITIVE_MAILBOX_NAMES),
    st.lists(_plain_label.filter(lambda label: "--" not in label), min_size=1, max_size=3),
    _plain_tld,
)


@settings(max_examples=300, deadline=None)
@given(PLAIN)
def test_the_fast_path_takes_plain_addresses(addr: str) -> None:
    fast = plain_normalized(addr)
    assert fast is not None, addr  # not a fast path that leaves everything to the library
    assert fast == _validated(addr, False) == _validated(addr, True)


def _outcome(raw: str, operator: bool) -> tuple[str, str]:
    try:
        box = _parse_mailbox(raw, operator)
    except ValueError as exc:
        return ("refused", str(exc))
    return (box.email, box.name)


@settings(max_examples=500, deadline=None)
@given(NEAR | PLAIN | st.builds(lambda addr: f"A Name <{addr}>", NEAR | PLAIN), st.booleans())
def test_parse_mailbox_answers_as_it_does_without_the_fast_path(raw: str, operator: bool) -> None:
    fast = _outcome(raw, operator)
    with mock.patch("shared.mailbox.plain_normalized", lambda addr: None):
        assert fast == _outcome(raw, operator)


@pytest.mark.parametrize(
    ("addr", "normalized"),
    [
        ("User.Name+tag@Example.COM", "User.Name+tag@example.com"),
        ("first.last@mail.Company-Name.co.uk", "first.last@mail.company-name.co.uk"),
        ("o'brien@example.org", "o'brien@example.org"),
        (f"{'a' * 64}@example.com", f"{'a' * 64}@example.com"),
    ],
)
def test_real_addresses_take_the_fast_path(addr: str, normalized: str) -> None:
    assert plain_normalized(addr) == normalized == _validated(addr, False)


@pytest.mark.parametrize(
    ("addr", "normalized"),
    [
        ("Postmaster@Example.COM", "postmaster@example.com"),  # RFC 2142: lowercased
        ("a@xn--bcher-kva.example", "a@bücher.example"),  # IDNA: decoded
        ("a@x.1a", "a@x.1a"),  # a TLD that ends with a letter
        (f"{'a' * 65}@example.com", f"{'a' * 65}@example.com"),  # 64 only when strict
        ("zoë@example.com", "zoë@example.com"),
    ],
)
def test_what_email_validator_changes_or_may_take_is_left_to_it(addr: str, normalized: str) -> None:
    assert plain_normalized(addr) is None
    assert _parse_mailbox(addr, False).email == normalized


def test_test_domains_are_left_to_email_validator_and_the_operator_flag() -> None:
    assert plain_normalized("ops@mail.test") is None
    assert _parse_mailbox("ops@mail.test", True).email == "ops@mail.test"
    with pytest.raises(ValueError, match="special-use"):
        _parse_mailbox("ops@mail.test", False)
    with pytest.raises(ValueError, match="too long"):
        _parse_mailbox(f"a@{'b' * 63}.{'c' * 63}.{'d' * 63}.{'e' * 60}.com", False)


def test_special_use_names_are_read_from_email_validator_as_it_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(email_validator, "SPECIAL_USE_DOMAIN_NAMES", ["example.com"])
    assert plain_normalized("a@mail.Example.com") is None
    with pytest.raises(ValueError, match="special-use"):
        _parse_mailbox("a@mail.Example.com", False)
