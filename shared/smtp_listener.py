"""An aiosmtpd SMTP server on the caller's event loop, for jetpost's own listeners
(the capture sink, the feedback receiver).

aiosmtpd's `Controller` runs a second loop in a thread; running the protocol on our
loop instead lets port 0 work, needs no locks, and lets `stop()` close open
sessions itself (Python 3.12's `wait_closed()` would otherwise wait for pooled
clients). The subclass is the aiosmtpd handler: it defines `handle_DATA` & co.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from aiosmtpd.smtp import SMTP


class SmtpListener:
    # Given explicitly: aiosmtpd would otherwise call the blocking socket.getfqdn()
    # for every connection it accepts.
    hostname = "jetpost"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.connections = 0  # SMTP sessions accepted
        self._sessions: weakref.WeakSet[Any] = weakref.WeakSet()
        self._server: asyncio.Server | None = None

    def smtp_options(self) -> dict[str, Any]:
        """Extra keyword arguments for aiosmtpd's SMTP protocol (limits, AUTH)."""
        return {}

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port=0)."""
        loop = asyncio.get_running_loop()

        def session() -> asyncio.BaseProtocol:
            self.connections += 1
            protocol = SMTP(self, hostname=self.hostname, enable_SMTPUTF8=True, loop=loop,
                            **self.smtp_options())  # fmt: skip
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
