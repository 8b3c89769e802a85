"""A fast path for the normalization email_validator gives a plain ASCII address.

`parse_mailbox` validates every address it has not seen recently with
`email_validator.validate_email`, about 110 µs a call under cProfile (most of it
`validate_email_domain_name`'s per-character Unicode checks, which an ASCII domain does
not need): 3-5 % of the send pipeline's CPU per mail when every recipient is new.

`plain_normalized` answers for a deliberately narrow subset only: a dot-atom local part
of ASCII atext, a domain of at least two ASCII LDH labels with an alphabetic top-level
label, and nothing that email_validator treats specially (special-use domains, IDNA
and other `--` labels, the RFC 2142 mailbox names it lowercases). For such an address it
returns exactly `validate_email(...).normalized`; for anything else it returns None and
the caller asks email_validator, which also words every refusal. It never accepts an
address email_validator refuses: tests/unit/test_mailbox_fast.py checks both on
generated addresses in and around the subset, with `test_environment` off and on.
"""

from __future__ import annotations

import re

import email_validator
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"  # RFC 5322 atext, as email_validator's ATEXT
# An LDH label of 1-63 characters that neither starts nor ends with a hyphen.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# The top-level label all letters: email_validator wants only the last character to be
# one, but an all-letter ASCII TLD is the only kind real addresses have.
PLAIN_ADDRESS = re.compile(
    rf"(?P<local>{ATEXT}+(?:\.{ATEXT}+)*)@(?P<domain>(?:{_LABEL}\.)+[A-Za-z]{{1,63}})"
)

# email_validator's own limits (rfc_constants): the whole address (original and
# normalized, the same length here) in octets. It checks the local part's 64 only when
# `strict`; keeping to 64 is narrower, so safe either way. A domain within an address of
# at most 254 is at most 252, under its DOMAIN_MAX_LENGTH of 253.
EMAIL_MAX_LENGTH, LOCAL_PART_MAX_LENGTH = 254, 64


def plain_normalized(addr: str) -> str | None:
    """`validate_email(addr, ...).normalized` for a plain ASCII address; None when
    email_validator has to decide (it may still accept the address).

    The same answer whatever `test_environment`: the only domains that flag changes
    anything for are `test` and those under it, which are left to email_validator."""
    if len(addr) > EMAIL_MAX_LENGTH:
        return None
    plain = PLAIN_ADDRESS.fullmatch(addr)
    if plain is None:
        return None
    local, domain = plain["local"], plain["domain"].lower()  # as its UTS-46 remap does
    if len(local) > LOCAL_PART_MAX_LENGTH or not _ordinary_domain(domain):
        return None
    if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:  # it lowercases these (RFC 2142)
        return None
    return f"{local}@{domain}"


def _ordinary_domain(domain: str) -> bool:
    """A lowercase LDH domain email_validator returns unchanged and does not refuse."""
    if "--" in domain:  # `xn--` labels are decoded to Unicode, other `ab--` ones refused
        return False
    # Read on each call, as email_validator does: a library global callers may change.
    return not any(
        domain == special or domain.endswith("." + special)
        for special in email_validator.SPECIAL_USE_DOMAIN_NAMES
    )
