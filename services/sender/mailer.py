"""The port every provider implements: a `Mailer` takes one built mail and says what
became of it (an `Outcome`); it never raises for a server's or the network's failure.

Providers live one per module beside this one (smtp, mx, kumomta, http_json, log);
`routing.py` puts several behind one `Mailer` with failover, and knows none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from services.sender.outcome import Outcome


@dataclass(frozen=True)
class Mail:
    """A mail as it goes out: the exact bytes (built and DKIM-signed once, so every
    retry and every provider sends the same), and the SMTP envelope."""

    data: bytes
    sender: str
    recipients: tuple[str, ...]
    # A UTF-8 local part somewhere in the envelope: only a peer offering SMTPUTF8
    # (RFC 6531) can take it; others bounce it with that reason.
    smtputf8: bool = False
    # A campaign's mail (the bulk lane): other mail gets a free connection first.
    bulk: bool = False


class Mailer(Protocol):
    name: str

    async def start(self) -> None: ...

    async def send(self, mail: Mail) -> Outcome: ...

    async def close(self) -> None: ...


@runtime_checkable
class ThrottleKeyed(Protocol):
    """A provider that knows more about where a mail goes than its recipients' domains
    (mx:// knows the MX hosts): the sender throttles those keys too."""

    async def throttle_keys(self, recipients: tuple[str, ...]) -> list[str]: ...
