"""A local SMTP sink for development, tests and benchmarks.

`jetpost dev` points the sender at it instead of a real relay; tests read what went
over the wire and script 4xx/5xx replies. aiosmtpd's protocol runs on the caller's
event loop (not in `Controller`'s thread), so port 0 works, state needs no locks and
`wait_for` wakes on a condition instead of polling.
"""

from __future__ import annotations

import asyncio
import email.policy
import itertools
import json
import os
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import AuthResult

from shared.smtp_listener import SmtpListener
from shared.subjects import MESSAGE_ID_RE


@dataclass(frozen=True)
class CapturedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes  # the DATA exactly as received (CRLF, dot-unstuffed)


class CaptureSink(SmtpListener):
    """Accepts every mail (unless scripted otherwise); `.eml` files go to `folder`."""

    hostname = "jetpost-capture"

    def __init__(
        self,
        folder: Path | None,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(host, port)
        self.folder = folder  # None: keep mail in memory only
        # (user, password) to require AUTH (over plain TCP: a local test double only)
        self.credentials = credentials
        self.received: list[CapturedMail] = []
        self.attempts = 0  # DATA commands, accepted or not
        self._script: deque[str] = deque()
        self._counter = itertools.count(1)
        self._changed = asyncio.Condition()

    async def start(self) -> int:
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        return await super().start()

    def smtp_options(self) -> dict[str, Any]:
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
            self._write(self.folder, mail)
        async with self._changed:
            self.received.append(mail)
            self._changed.notify_all()
        return reply

    def _write(self, folder: Path, mail: CapturedMail) -> None:
        """`<message id>.eml` (jetpost's X-Jetpost-Message-Id; a timestamp for other
        mail) and `<same>.envelope.json` with MAIL FROM and RCPT TO beside it. Each
        atomically (temp file, then rename; the envelope first), so a reader never
        sees half a mail. Not fsynced: a sink for development, not a mail store."""
        stem = capture_stem(mail.data) or datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stem}-{next(self._counter):06d}"
        if not (folder / f"{stem}.eml").exists():
            name = stem  # a redelivered mail keeps the first name and gets a counter
        envelope = {"mail_from": mail.mail_from, "rcpt_tos": list(mail.rcpt_tos),
                    "received_at": datetime.now(UTC).isoformat()}  # fmt: skip
        for suffix, content in ((ENVELOPE_SUFFIX, json.dumps(envelope, indent=1).encode()),
                                (".eml", mail.data)):  # fmt: skip
            temp = folder / f".{name}{suffix}.tmp"
            temp.write_bytes(content)
            os.replace(temp, folder / f"{name}{suffix}")


ENVELOPE_SUFFIX = ".envelope.json"


def capture_stem(data: bytes) -> str | None:
    """The jetpost message id a mail carries (X-Jetpost-Message-Id), if a safe name."""
    head = BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
    value = str(head.get("X-Jetpost-Message-Id", "")).strip()
    return value if MESSAGE_ID_RE.match(value) else None
