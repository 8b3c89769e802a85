"""The sender's SMTP commands (`smtp_commands`): replies bounded by one timer each,
as aiosmtplib bounded them with `wait_for`: a server that stalls at any step is timed
out at that step (the mail is `uncertain` when it stalled in the DATA step, as
smtp_pool marks any failure there), the session is dropped, and the next mail takes
a fresh connection. DATA puts the same bytes on the wire as aiosmtplib's `data()`.

The peer is a scripted SMTP server on a loopback port that can stay silent at one
chosen reply; it records every byte it was sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiosmtplib
import pytest

from services.sender import smtp_commands
from services.sender.mailer import Mail
from services.sender.smtp_pool import SmtpPool

TIMEOUT = 1.0  # a reply from the in-process peer comes far sooner, even on a loaded machine
REPLIES = {b"MAIL": b"250 2.1.0 ok", b"RCPT": b"250 2.1.5 ok", b"DATA": b"354 go ahead",
           b"END": b"250 2.0.0 queued", b"RSET": b"250 ok", b"QUIT": b"221 bye"}  # fmt: skip


class ScriptedPeer:
    """Answers EHLO, then each command with `replies` (what "END" names is the reply
    to the end of data), except that it stays silent at the reply named by `stall`
    until it is stopped."""

    def __init__(self) -> None:
        self.replies = dict(REPLIES)
        self.stall: bytes | None = None
        self.connections = 0
        self.messages: list[bytes] = []  # what came between 354 and the lone dot, raw
        self.closed = asyncio.Event()  # a session ended
        self._release = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _answer(self, writer: asyncio.StreamWriter, step: bytes) -> bytes:
        if self.stall == step:
            await self._release.wait()
            return b""
        line = self.replies.get(step, b"500 what")
        writer.write(line + b"\r\n")
        await writer.drain()
        return line

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"220 peer ESMTP\r\n")
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-peer\r\n250 8BITMIME\r\n")
                    continue
                answered = await self._answer(writer, verb)
                if verb == b"DATA" and answered.startswith(b"354"):
                    message = b""
                    while (chunk := await reader.readline()) not in (b".\r\n", b""):
                        message += chunk
                    self.messages.append(message)
                    await self._answer(writer, b"END")
                if verb == b"QUIT":
                    break
        self.closed.set()
        writer.close()


@pytest.fixture
async def peer() -> AsyncIterator[ScriptedPeer]:
    server = ScriptedPeer()
    await server.start()
    yield server
    await server.stop()


def mail(n: int = 0) -> Mail:
    return Mail(f"Subject: {n}\r\n\r\nhello\r\n".encode(), "bounce@jetpost.test",
                ("alice@example.com",))  # fmt: skip


@pytest.mark.parametrize("step", [b"MAIL", b"RCPT", b"DATA", b"END"])
async def test_a_stall_at_any_reply_times_out_there_and_drops_the_session(
    peer: ScriptedPeer, step: bytes
) -> None:
    pool = SmtpPool("127.0.0.1", peer.port, size=1, timeout=TIMEOUT)
    try:
        assert (await pool.send(mail(1))).kind == "delivered"  # a kept, reused connection
        peer.stall = step
        async with asyncio.timeout(10 * TIMEOUT):
            stalled = await pool.send(mail(2))
        peer.stall = None
        after = await pool.send(mail(3))
    finally:
        await pool.close()
    assert stalled.kind == "deferred" and stalled.connection
    assert stalled.response == f"SMTPReadTimeoutError: {smtp_commands.TIMED_OUT}"
    assert stalled.uncertain == (step in (b"DATA", b"END"))  # as smtp_pool marks the DATA step
    assert after.kind == "delivered"
    assert peer.connections == 2  # the timed-out session was not reused
    assert len(peer.messages) == (3 if step == b"END" else 2)


async def test_a_reply_in_time_leaves_no_timer_behind(peer: ScriptedPeer) -> None:
    """The connection kept after a delivery is still open after its timers would
    have fired: each was cancelled with its reply."""
    pool = SmtpPool("127.0.0.1", peer.port, size=1, timeout=TIMEOUT)
    try:
        assert (await pool.send(mail(1))).kind == "delivered"
        with pytest.raises(TimeoutError):  # the peer does not see the session closed
            async with asyncio.timeout(2.5 * TIMEOUT):
                await peer.closed.wait()
        assert (await pool.send(mail(2))).kind == "delivered"
    finally:
        await pool.close()
    assert peer.connections == 1


MESSAGES = [
    b"Subject: x\r\n\r\nplain\r\n",
    b"Subject: x\n\nbare LF\n.leading dot\n..two dots\n",
    b"Subject: x\r\n\r\nlone CR\rend without a line ending",
    b".\r\n.\r\n",
    b"",
    "Subject: é\r\n\r\nUTF-8 ünïcödé\r\n".encode(),
]


@pytest.mark.parametrize("message", MESSAGES)
async def test_data_sends_what_aiosmtplib_sends(peer: ScriptedPeer, message: bytes) -> None:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=peer.port, timeout=5)
    await smtp.connect()
    try:
        for send in (smtp.data, lambda m: smtp_commands.data(smtp, m)):
            await smtp.mail("a@example.com")
            await smtp.rcpt("b@example.com")
            reply = await send(message)
            assert (reply.code, reply.message) == (250, "2.0.0 queued")
    finally:
        smtp.close()
    assert len(peer.messages) == 2 and peer.messages[0] == peer.messages[1]


@pytest.mark.parametrize(
    ("step", "refusal"),
    [(b"DATA", b"554 5.5.1 no valid recipients"), (b"END", b"552 5.3.4 too big")],
)
async def test_a_refused_data_raises_as_aiosmtplib_does(
    peer: ScriptedPeer, step: bytes, refusal: bytes
) -> None:
    peer.replies[step] = refusal
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=peer.port, timeout=5)
    await smtp.connect()
    raised = []
    try:
        for send in (smtp.data, lambda m: smtp_commands.data(smtp, m)):
            await smtp.mail("a@example.com")
            await smtp.rcpt("b@example.com")
            with pytest.raises(aiosmtplib.SMTPDataError) as caught:
                await send(b"Subject: x\r\n\r\nbody\r\n")
            raised.append((caught.value.code, caught.value.message))
            await smtp.rset()
    finally:
        smtp.close()
    assert raised == [(int(refusal[:3]), refusal[4:].decode())] * 2


async def test_a_command_with_a_control_character_is_refused(peer: ScriptedPeer) -> None:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=peer.port, timeout=5)
    await smtp.connect()
    try:
        with pytest.raises(ValueError, match="prohibited control character"):
            await smtp_commands.command(smtp, b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@x.com>")
        assert (await smtp_commands.command(smtp, b"MAIL FROM:<a@example.com>")).code == 250
    finally:
        smtp.close()


async def test_a_421_closes_the_session_as_aiosmtplib_does(peer: ScriptedPeer) -> None:
    peer.replies[b"MAIL"] = b"421 4.3.2 shutting down"
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=peer.port, timeout=5)
    await smtp.connect()
    try:
        assert (await smtp_commands.command(smtp, b"MAIL FROM:<a@example.com>")).code == 421
        assert not smtp.is_connected
    finally:
        smtp.close()
