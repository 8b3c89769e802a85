"""A local SMTP sink for development, tests and benchmarks.

`jetpost dev` points the sender at it instead of a real relay; tests read what went
over the wire and script 4xx/5xx replies. aiosmtpd's protocol runs on the caller's
event loop (not in `Controller`'s thread), so port 0 works, state needs no locks and
`wait_for` wakes on a condition instead of polling.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import weakref
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult

# Given explicitly: aiosmtpd would otherwise call the blocking socket.getfqdn() for
# every connection it accepts.
_HOSTNAME = "jetpost-capture"


@dataclass(frozen=True)
class CapturedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes  # the DATA exactly as received (CRLF, dot-unstuffed)


class CaptureSink:
    """Accepts every mail (unless scripted otherwise); `.eml` files go to `folder`."""

    def __init__(
        self,
        folder: Path | None,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.folder = folder  # None: keep mail in memory only
        # (user, password) to require AUTH (over plain TCP: a local test double only)
        self.credentials = credentials
        self.host = host
        self.port = port
        self.received: list[CapturedMail] = []
        self.attempts = 0  # DATA commands, accepted or not
        self.connections = 0  # SMTP sessions accepted
        self._script: deque[str] = deque()
        self._counter = itertools.count(1)
        self._changed = asyncio.Condition()
        self._sessions: weakref.WeakSet[Any] = weakref.WeakSet()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port=0)."""
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()

        def session() -> asyncio.BaseProtocol:
            self.connections += 1
            protocol = SMTP(self, hostname=_HOSTNAME, enable_SMTPUTF8=True, loop=loop,
                            **self._auth_options())  # fmt: skip
            self._sessions.add(protocol)
            return protocol

        self._server = await loop.create_server(session, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Stop listening and drop every open session (clients see a disconnect)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for protocol in list(self._sessions):
            if protocol.transport is not None:
                protocol.transport.close()
        await server.wait_closed()

    def _auth_options(self) -> dict[str, Any]:
        if self.credentials is None:
            return {}
        return {
            "auth_required": True,
            "auth_require_tls": False,
            "authenticator": self._authenticate,
        }

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        login = (getattr(auth_data, "login", b""), getattr(auth_data, "password", b""))
        expected = tuple(part.encode() for part in self.credentials or ("", ""))
        return AuthResult(success=login == expected)

    def script(self, responses: list[str]) -> None:
        """Reply to the next DATA commands with these lines (e.g. "451 4.3.0 later")
        instead of "250 OK"; a mail refused this way is not stored."""
        for response in responses:
            if not (response[:3].isdigit() and response[3:4] in ("", " ")):
                raise ValueError(f"not an SMTP reply: {response!r}")
        self._script.extend(responses)

    async def wait_for(self, count: int, timeout: float) -> list[CapturedMail]:
        """Every mail received, once there are at least `count`; TimeoutError if not."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.received) >= count)
        return list(self.received)

    # aiosmtpd handler hook, called with the session's envelope once DATA is complete.
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        reply = self._script.popleft() if self._script else "250 OK"
        if not reply.startswith("2"):
            return reply
        mail = CapturedMail(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.original_content)
        if self.folder is not None:
            self._write(self.folder, mail.data)
        async with self._changed:
            self.received.append(mail)
            self._changed.notify_all()
        return reply

    def _write(self, folder: Path, data: bytes) -> None:
        """Atomically (temp file, then rename), so a reader never sees half a mail.
        Not fsynced: this is a sink for development, not a mail store."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{next(self._counter):06d}.eml"
        temp = folder / f".{name}.tmp"
        temp.write_bytes(data)
        os.replace(temp, folder / name)
