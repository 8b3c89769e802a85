"""Real network peers for the delivery tests, all on loopback ports: a DNS responder
built with dnspython's message API (UDP and TCP), SMTP sinks that misbehave in the
ways the sender must survive, and a small HTTP/1.1 server for the HTTP providers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import Callable
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from aiosmtpd.smtp import SMTP

from services.capture import CaptureSink
from shared.embedded import free_port

# --- DNS -------------------------------------------------------------------------


class DnsResponder:
    """Answers from `records`: {(name, type): [rdata text]}; a name absent from every
    key is NXDOMAIN, a known name without that type an empty NOERROR answer."""

    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = {(n.lower().rstrip("."), t.upper()): v for (n, t), v in records.items()}
        self.port = 0
        self.queries = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def answer(self, wire: bytes) -> bytes:
        self.queries += 1
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        if not any(n == name for n, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif (name, rdtype) in self.records:
            rrset = dns.rrset.from_text_list(
                question.name, 60, dns.rdataclass.IN, rdtype, self.records[(name, rdtype)]
            )
            response.answer.append(rrset)
        return bytes(response.to_wire())

    async def start(self) -> str:
        loop = asyncio.get_running_loop()
        responder = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                self.transport.sendto(responder.answer(data), addr)  # type: ignore[attr-defined]

        # one free port for both UDP and TCP
        for _ in range(20):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            try:
                self._tcp = await asyncio.start_server(self._tcp_client, "127.0.0.1", port)
                self._udp, _ = await loop.create_datagram_endpoint(
                    Udp, local_addr=("127.0.0.1", port)
                )
            except OSError:
                if self._tcp is not None:
                    self._tcp.close()
                continue
            self.port = port
            return self.address
        raise OSError("no free port for the DNS responder")

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                reply = self.answer(await reader.readexactly(size))
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        writer.close()

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()


# --- SMTP ------------------------------------------------------------------------


class AnsweringSink(CaptureSink):
    """A sink that answers every DATA with `reply` (e.g. 421) instead of 250."""

    def __init__(self, reply: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(None, host=host, port=port)
        self.reply = reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        return self.reply


class DroppingSink(CaptureSink):
    """Takes the whole mail (it counts as received: the duplicate risk is real), then
    drops the connection instead of answering DATA."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(None, host=host, port=port)
        self.dropped = 0
        self.drop = True  # False: behave as a plain sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if not self.drop:
            return reply
        self.dropped += 1
        server.transport.close()
        return "250 OK"  # never reaches the client


class HangingServer:
    """Accepts TCP connections and never says a word (the client must time out)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self._writers.append(writer)

        self._server = await asyncio.start_server(hold, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


# A loopback port nothing listens on: connections to it are refused.
refusing_port = free_port


# --- HTTP ------------------------------------------------------------------------

Responder = Callable[[str, dict[str, str], bytes], tuple[int, dict[str, Any]]]


class JsonHttpServer:
    """HTTP/1.1 with keep-alive, JSON in and out: `respond(path, headers, body)` gives
    (status, json). Every request is kept in `requests`."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass  # stopped while the client kept its connection open
        finally:
            self._clients.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ValueError):
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                _, path, _ = request_line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((path, headers, body))
                status, answer = self.respond(path, headers, body)
                payload = json.dumps(answer).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()

    async def stop(self) -> None:
        for task in list(self._clients):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def kumomta_inject(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    """KumoMTA's documented POST /api/inject/v1: recipients at `refused.test` fail."""
    if path != "/api/inject/v1":
        return 404, {"error": "not found"}
    request = json.loads(body)
    if not isinstance(request.get("content"), str) or not request.get("recipients"):
        return 400, {"error": "bad request"}
    rcpts = [r["email"] for r in request["recipients"]]
    failed = [r for r in rcpts if r.endswith("@refused.test")]
    return 200, {
        "success_count": len(rcpts) - len(failed),
        "fail_count": len(failed),
        "failed_recipients": failed,
        "errors": [f"{r}: 550 refused by policy" for r in failed],
    }


class PickySink(CaptureSink):
    """A sink that refuses recipients at `refused.test` with 550 (RCPT level)."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower().endswith("@refused.test"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class NoUtf8Sink(CaptureSink):
    """A sink that does not offer SMTPUTF8 (as many servers still do not)."""

    async def start(self) -> int:
        loop = asyncio.get_running_loop()

        def session() -> asyncio.BaseProtocol:
            self.connections += 1
            protocol = SMTP(self, hostname=self.hostname, enable_SMTPUTF8=False, loop=loop)
            self._sessions.add(protocol)
            return protocol

        self._server = await loop.create_server(session, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port


def json_webhook(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    """A generic JSON mail web hook: 422 when every recipient is at `refused.test`."""
    request = json.loads(body)
    rcpts = request.get("rcpt_to") or []
    if rcpts and all(r.endswith("@refused.test") for r in rcpts):
        return 422, {"error": "recipients refused"}
    return 202, {"id": f"m{len(rcpts)}"}
