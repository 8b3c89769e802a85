"""shared/nats_parser.py's parse does what nats-py's `Parser.parse` does: the same
deliveries and callbacks in the same order, the same protocol error at the same place,
the same state left behind, for generated streams of protocol operations (plain and
odd control lines, headers, PING, PONG, +OK, -ERR, INFO, garbage) cut into reads at
generated places; deliveries to raw subscriptions go to their handlers instead of
`_process_msg`, in the same order."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.errors import ProtocolError
from nats.protocol.parser import Parser

from shared import nats_parser

RAW_SIDS = (1, 3)  # subscriptions the fast parser hands to handlers


class Recorder:
    """The client side of a parser: records every call it gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes,
                           headers: bytes | None) -> None:  # fmt: skip
        self.calls.append(("msg", sid, subject, reply, data, headers))

    async def _process_err(self, msg: str) -> None:
        self.calls.append(("err", msg))

    async def _process_ping(self) -> None:
        self.calls.append(("ping",))

    async def _process_pong(self) -> None:
        self.calls.append(("pong",))

    async def _process_info(self, info: Any) -> None:
        self.calls.append(("info", info))


def _frame(kind: str, sid: int, subject: bytes, reply: bytes, hdr: bytes, body: bytes,
           sep: bytes) -> bytes:  # fmt: skip
    r = reply + sep if reply else b""
    if kind == "msg":
        return b"MSG" + sep + subject + sep + str(sid).encode() + sep + r + str(len(body)).encode() + b"\r\n" + body + b"\r\n"  # fmt: skip  # noqa: E501
    total = len(hdr) + len(body)
    return (b"HMSG" + sep + subject + sep + str(sid).encode() + sep + r + str(len(hdr)).encode()
            + sep + str(total).encode() + b"\r\n" + hdr + body + b"\r\n")  # fmt: skip


WHITESPACE = b" \t\r\n\x0b\x0c"
tokens = st.binary(min_size=1, max_size=6).filter(lambda b: not any(c in WHITESPACE for c in b))
names = st.one_of(
    st.sampled_from([b"mail.evt.m1.accepted", b"_INBOX.a.1", b"$JS.ACK.S.C.1.5.5.1.0"]), tokens
)
bodies = st.one_of(st.binary(max_size=30), st.sampled_from([b"", b"1\r\n2", b"{}", b"\r\n"]))
headers = st.one_of(
    st.sampled_from([b"NATS/1.0\r\nNats-Msg-Id: x\r\n\r\n", b"NATS/1.0 404 No Messages\r\n\r\n"]),
    st.binary(max_size=12),
)
messages = st.builds(
    _frame, st.sampled_from(["msg", "hmsg"]), st.integers(0, 4), names,
    st.one_of(st.just(b""), names), headers, bodies,
    st.sampled_from([b" ", b" ", b" ", b"  ", b"\t", b" \x0b"]),
)  # fmt: skip
others = st.sampled_from([
    b"PING\r\n", b"PONG\r\n", b"+OK\r\n", b"-ERR 'Stale Connection'\r\n", b'INFO {"a": 1}\r\n',
    b"MSG a 1 5 \r\nhello\r\n", b"HMSG a 1 2 5\r\n12345\r\n", b"HMSG a 1 2 3\r\n1\r\n3\r\n",
    b"MSG a 1 x 3\r\nabc\r\n", b"MSG a x 3\r\nabc\r\n", b"MSG a 1 3\rx\r\nabc\r\n", b"HELLO\r\n",
    b" MSG a 1 3\r\nabc\r\n", b"MSG a 1 0\r\n\r\n", b"HMSG a 1 0 3\r\nabc\r\n",
    b"HMSG a 1 9 3\r\nabc\r\n", b"MSG\ta 1 3\r\nabc\r\n", b"MSG a 1 1_0\r\n0123456789\r\n",
])  # fmt: skip
streams = st.lists(st.one_of(messages, messages, others), max_size=12).map(b"".join)


def run(stream: bytes, cuts: list[int], fast: bool) -> tuple[Any, ...]:
    nc = Recorder()
    ps = Parser(nc)
    if fast:
        table = {sid: _handler(nc, sid) for sid in RAW_SIDS}
        parse: Any = lambda data: nats_parser.parse(ps, table, data)  # noqa: E731
    else:
        parse = ps.parse
    edges = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    error = None
    for lo, hi in itertools.pairwise(edges):
        try:
            asyncio.run(parse(stream[lo:hi]))
        except ProtocolError as exc:
            error = (lo, hi, str(exc))
            break
    return nc.calls, error, bytes(ps.buf), ps.state, ps.needed, ps.header_needed


def _handler(nc: Recorder, sid: int) -> Any:
    def handle(subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        nc.calls.append(("msg", sid, subject, reply, data, headers))

    return handle


@settings(max_examples=800, deadline=None)
@given(streams, st.lists(st.integers(0, 10_000), max_size=6))
@example(b"HMSG a 1 2 3\r\n1\r\n3\r\n", [])
@example(b"MSG a 1 5 \r\nhello\r\n", [])
@example(b"HMSG s 1 10 20\r\nNATS/1.0\r\n0123456789\r\n", [16])
def test_the_fast_parse_does_what_nats_py_does(stream: bytes, cuts: list[int]) -> None:
    theirs = run(stream, cuts, fast=False)
    ours = run(stream, cuts, fast=True)
    assert ours == theirs


def test_a_failing_handler_is_logged_and_the_stream_goes_on(caplog: Any) -> None:
    nc = Recorder()
    ps = Parser(nc)
    seen: list[bytes] = []

    def boom(subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        seen.append(data)
        if data == b"bad":
            raise RuntimeError("handler bug")

    stream = b"MSG a 1 3\r\nbad\r\nMSG a 1 2\r\nok\r\nMSG b 2 1\r\nx\r\n"
    asyncio.run(nats_parser.parse(ps, {1: boom}, stream))
    assert seen == [b"bad", b"ok"]
    assert nc.calls == [("msg", 2, b"b", b"", b"x", None)]
    assert "raw handler of subscription 1 failed" in caplog.text


def test_a_reset_while_a_delivery_is_handed_on_stops_the_read_as_nats_py_does() -> None:
    """A reconnect resets the parser while `_process_msg` runs: what was left of the
    read belongs to the old connection, and neither parser goes on with it."""

    def outcome(fast: bool) -> tuple[Any, ...]:
        nc = Recorder()
        ps = Parser(nc)

        async def reset_on_first(*args: Any) -> None:
            nc.calls.append(("msg", *args))
            ps.reset()

        nc._process_msg = reset_on_first  # type: ignore[method-assign,assignment]
        stream = b"MSG a 2 1\r\nx\r\nMSG b 2 1\r\ny\r\n"
        parse = (lambda d: nats_parser.parse(ps, {}, d)) if fast else ps.parse
        asyncio.run(parse(stream))
        return nc.calls, bytes(ps.buf), ps.state

    assert (
        outcome(fast=True) == outcome(fast=False) == ([("msg", 2, b"a", b"", b"x", None)], b"", 1)
    )


def test_the_fast_path_is_installed_only_over_the_parser_it_was_tested_against(
    monkeypatch: Any, caplog: Any
) -> None:
    nc = Client()
    nats_parser.install(nc, {})
    assert "parse" in vars(nc._ps)  # nats-py 2.16's parser: the fast path is on
    other = Client()
    monkeypatch.setattr(nats_parser, "_KNOWN_PARSE", "another nats-py")
    nats_parser.install(other, {})
    assert "parse" not in vars(other._ps)
    assert "fast path stays off" in caplog.text
