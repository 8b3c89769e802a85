"""Address parsing: `"Name <addr>"` or a bare address, validated and header-safe."""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.utils import getaddresses
from functools import lru_cache

import idna
from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict

from shared.address_fast import ATEXT, plain_normalized
from shared.limits import has_line_break as has_line_break  # re-exported for callers


def ascii_domain(domain: str) -> str:
    """An IDN domain as its A-label form (`bücher.example` -> `xn--bcher-kva.example`),
    the form SMTP envelopes and DNS take; ValueError if it has none."""
    if domain.isascii():
        return domain.lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"domain {domain!r} has no IDNA form: {exc}") from None


class Mailbox(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    email: str
    name: str = ""

    def __str__(self) -> str:
        return str(self.as_address()) if self.name else self.email

    def as_address(self) -> Address:
        """For headers: the domain as an A-label, which every mail reader shows."""
        local, _, domain = self.email.rpartition("@")
        return Address(display_name=self.name, username=local, domain=ascii_domain(domain))

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]

    @property
    def smtp_address(self) -> str:
        """For the SMTP envelope: the domain as an A-label (IDNA)."""
        local, _, domain = self.email.rpartition("@")
        return f"{local}@{ascii_domain(domain)}"

    @property
    def needs_smtputf8(self) -> bool:
        """A UTF-8 local part: only a server offering SMTPUTF8 (RFC 6531) takes it."""
        return not self.email.rpartition("@")[0].isascii()


# `addr` and `Name <addr>` in their plainest forms (atoms and dots; a name of words
# without specials, single-spaced): split by one regex instead of the email package's
# parser (a quarter of parse_mailbox's time), into exactly what `getaddresses` makes
# of them (tests/unit/test_mailbox_split.py checks it on generated inputs). Anything
# else goes through `getaddresses`.
_ATOM = ATEXT + "+"
_ADDR = rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*"
_WORD = r"[^\s\"(),.:;<>@\[\]\\]+"
PLAIN = re.compile(rf"(?P<bare>{_ADDR})|(?P<name>{_WORD}(?: {_WORD})*) <(?P<addr>{_ADDR})>")


def split_mailbox(raw: str) -> list[tuple[str, str]]:
    """`getaddresses([raw])`: (name, address) pairs."""
    plain = PLAIN.fullmatch(raw)
    if plain is None:
        return getaddresses([raw])
    if plain["bare"]:
        return [("", plain["bare"])]
    return [(plain["name"], plain["addr"])]


def parse_mailbox(raw: str, *, operator: bool = False) -> Mailbox:
    """One mailbox; ValueError with a readable reason otherwise.

    `operator`: an address from our own configuration (the default sender), where
    test domains such as `.test` are allowed.

    The answers for the last PARSED_CACHE addresses are kept (a Mailbox is frozen, so
    callers can share one): email_validator took a tenth of a `POST /v1/messages`, and
    the same recipients and sender come back again and again. A refused address is
    checked again each time (its ValueError is not cached), and so is a long one (a
    display name can be long: the cache's memory stays bounded).
    """
    if type(raw) is str and len(raw) <= CACHED_LENGTH:  # not a str subclass: its own hash
        return _parsed(raw, operator)
    return _parse_mailbox(raw, operator)


PARSED_CACHE, CACHED_LENGTH = 4096, 512


@lru_cache(maxsize=PARSED_CACHE)
def _parsed(raw: str, operator: bool) -> Mailbox:
    return _parse_mailbox(raw, operator)


def _parse_mailbox(raw: str, operator: bool) -> Mailbox:
    if has_line_break(raw):
        raise ValueError("address contains a line break")
    parsed = split_mailbox(raw)
    if len(parsed) != 1 or not parsed[0][1]:
        raise ValueError(f"not a single address: {raw!r}")
    name, addr = parsed[0]
    # a plain ASCII address without email_validator's per-character Unicode checks (the
    # same answer: shared/address_fast.py); anything else, and every refusal, through it
    email = plain_normalized(addr) or _validated(addr, raw, operator)
    return Mailbox(email=email, name=name.strip())


def _validated(addr: str, raw: str, operator: bool) -> str:
    """email_validator's normalized form of `addr`, for what the fast path leaves to it."""
    try:
        valid = validate_email(
            addr, check_deliverability=False, allow_display_name=False, test_environment=operator
        )
    except EmailNotValidError as exc:
        # as given ("not an address"), not as parsed ('not')
        raise ValueError(f"invalid address {raw.strip()!r}: {exc}") from None
    return valid.normalized
