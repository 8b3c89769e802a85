"""Address parsing: `"Name <addr>"` or a bare address, validated and header-safe."""

from __future__ import annotations

from email.headerregistry import Address
from email.utils import getaddresses

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict


class Mailbox(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    email: str
    name: str = ""

    def __str__(self) -> str:
        return str(self.as_address()) if self.name else self.email

    def as_address(self) -> Address:
        local, _, domain = self.email.rpartition("@")
        return Address(display_name=self.name, username=local, domain=domain)

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]


def has_line_break(value: str) -> bool:
    return any(ch in value for ch in "\r\n\0")


def parse_mailbox(raw: str, *, operator: bool = False) -> Mailbox:
    """One mailbox; ValueError with a readable reason otherwise.

    `operator`: an address from our own configuration (the default sender), where
    test domains such as `.test` are allowed.
    """
    if has_line_break(raw):
        raise ValueError("address contains a line break")
    parsed = getaddresses([raw])
    if len(parsed) != 1 or not parsed[0][1]:
        raise ValueError(f"not a single address: {raw!r}")
    name, addr = parsed[0]
    try:
        valid = validate_email(
            addr, check_deliverability=False, allow_display_name=False, test_environment=operator
        )
    except EmailNotValidError as exc:
        # as given ("not an address"), not as parsed ('not')
        raise ValueError(f"invalid address {raw.strip()!r}: {exc}") from None
    return Mailbox(email=valid.normalized, name=name.strip())
